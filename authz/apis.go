package authz

// Requirement is one check an API makes: Operation on a resource of type
// Resource, under the condition When ("" = always).
type Requirement struct {
	Operation Operation
	Resource  ResourceType
	When      string
}

// APIRequirements is Kafka's table of the operations and resources each
// API needs ("Operations and Resources on Protocols" in Kafka's
// authorization documentation), keyed by API key. Requirements with a
// When apply only in that case; two requirements on the same resource
// with "or" conditions are alternatives (CreateTopics: CREATE on the
// CLUSTER or on the TOPIC). APIs without an entry need no authorization
// (ApiVersions, SaslHandshake, SaslAuthenticate).
var APIRequirements = map[int16][]Requirement{
	0: { // Produce
		{OpWrite, ResourceTransactionalID, "transactional producer"},
		{OpIdempotentWrite, ResourceCluster, "idempotent producer, not transactional: granted by WRITE on the topic (KIP-679)"},
		{OpWrite, ResourceTopic, ""},
	},
	1: { // Fetch
		{OpClusterAction, ResourceCluster, "follower replica fetch"},
		{OpRead, ResourceTopic, "consumer fetch"},
	},
	2: {{OpDescribe, ResourceTopic, ""}}, // ListOffsets
	3: { // Metadata
		{OpDescribe, ResourceTopic, ""},
		{OpCreate, ResourceCluster, "auto topic creation, or"},
		{OpCreate, ResourceTopic, "auto topic creation"},
	},
	8: {{OpRead, ResourceGroup, ""}, {OpRead, ResourceTopic, ""}},         // OffsetCommit
	9: {{OpDescribe, ResourceGroup, ""}, {OpDescribe, ResourceTopic, ""}}, // OffsetFetch
	10: { // FindCoordinator
		{OpDescribe, ResourceGroup, "group coordinator"},
		{OpDescribe, ResourceTransactionalID, "transaction coordinator"},
	},
	11: {{OpRead, ResourceGroup, ""}},     // JoinGroup
	12: {{OpRead, ResourceGroup, ""}},     // Heartbeat
	13: {{OpRead, ResourceGroup, ""}},     // LeaveGroup
	14: {{OpRead, ResourceGroup, ""}},     // SyncGroup
	15: {{OpDescribe, ResourceGroup, ""}}, // DescribeGroups
	16: { // ListGroups
		{OpDescribe, ResourceCluster, "all groups, or"},
		{OpDescribe, ResourceGroup, "the groups it may describe"},
	},
	19: { // CreateTopics
		{OpCreate, ResourceCluster, "or"},
		{OpCreate, ResourceTopic, ""},
		{OpDescribeConfigs, ResourceTopic, "configs in the response"},
	},
	20: {{OpDelete, ResourceTopic, ""}}, // DeleteTopics
	21: {{OpDelete, ResourceTopic, ""}}, // DeleteRecords
	22: { // InitProducerId
		{OpWrite, ResourceTransactionalID, "transactional id given"},
		{OpIdempotentWrite, ResourceCluster, "no transactional id; or WRITE on any topic (KIP-679)"},
	},
	23: { // OffsetForLeaderEpoch
		{OpClusterAction, ResourceCluster, "follower replica"},
		{OpDescribe, ResourceTopic, "consumer"},
	},
	24: {{OpWrite, ResourceTransactionalID, ""}, {OpWrite, ResourceTopic, ""}}, // AddPartitionsToTxn
	25: {{OpWrite, ResourceTransactionalID, ""}, {OpRead, ResourceGroup, ""}},  // AddOffsetsToTxn
	26: {{OpWrite, ResourceTransactionalID, ""}},                               // EndTxn
	27: {{OpClusterAction, ResourceCluster, ""}},                               // WriteTxnMarkers
	28: { // TxnOffsetCommit
		{OpWrite, ResourceTransactionalID, ""},
		{OpRead, ResourceGroup, ""},
		{OpRead, ResourceTopic, ""},
	},
	29: {{OpDescribe, ResourceCluster, ""}}, // DescribeAcls
	30: {{OpAlter, ResourceCluster, ""}},    // CreateAcls
	31: {{OpAlter, ResourceCluster, ""}},    // DeleteAcls
	32: { // DescribeConfigs
		{OpDescribeConfigs, ResourceCluster, "broker configs"},
		{OpDescribeConfigs, ResourceTopic, "topic configs"},
	},
	33: { // AlterConfigs
		{OpAlterConfigs, ResourceCluster, "broker configs"},
		{OpAlterConfigs, ResourceTopic, "topic configs"},
	},
	35: {{OpDescribe, ResourceCluster, ""}}, // DescribeLogDirs
	37: {{OpAlter, ResourceTopic, ""}},      // CreatePartitions
	42: {{OpDelete, ResourceGroup, ""}},     // DeleteGroups
	43: {{OpAlter, ResourceCluster, ""}},    // ElectLeaders
	44: { // IncrementalAlterConfigs
		{OpAlterConfigs, ResourceCluster, "broker configs"},
		{OpAlterConfigs, ResourceTopic, "topic configs"},
	},
	45: {{OpAlter, ResourceCluster, ""}},                             // AlterPartitionReassignments
	46: {{OpDescribe, ResourceCluster, ""}},                          // ListPartitionReassignments
	47: {{OpDelete, ResourceGroup, ""}, {OpRead, ResourceTopic, ""}}, // OffsetDelete
	48: {{OpDescribeConfigs, ResourceCluster, ""}},                   // DescribeClientQuotas
	49: {{OpAlterConfigs, ResourceCluster, ""}},                      // AlterClientQuotas
	50: {{OpDescribe, ResourceCluster, ""}},                          // DescribeUserScramCredentials
	51: {{OpAlter, ResourceCluster, ""}},                             // AlterUserScramCredentials
	55: {{OpDescribe, ResourceCluster, ""}},                          // DescribeQuorum
	// DescribeCluster: Kafka's brokers answer it to everyone; DESCRIBE
	// only lets the response tell the cluster's authorized operations.
	60: {{OpDescribe, ResourceCluster, "authorized operations"}},
	61: {{OpRead, ResourceTopic, ""}},               // DescribeProducers
	65: {{OpDescribe, ResourceTransactionalID, ""}}, // DescribeTransactions
	66: {{OpDescribe, ResourceTransactionalID, ""}}, // ListTransactions
	75: {{OpDescribe, ResourceTopic, ""}},           // DescribeTopicPartitions
}
