package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/txn"
)

const apiKeyVersions = 18

// ApiVersions v0-v4 (Kafka 4.2's): v4 differs from v3 only in that a
// supported feature may have min version 0 (KAFKA-17011; v3 answers omit
// those).
func init() { register(0, 4, handleAPIVersions) }

func apiVersionsList() []kmsg.ApiVersionsResponseApiKey {
	served := servedAPIs()
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(served))
	for _, a := range served {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: a.key, MinVersion: a.minVersion, MaxVersion: a.maxVersion})
	}
	return keys
}

func handleAPIVersions(c *clientConn, h requestHeader, req *kmsg.ApiVersionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiVersionsList()
	if resp.Version >= 3 {
		c.server.advertiseFeatures(resp)
	}
	return resp, nil
}

// Features (KIP-584), in ApiVersions v3+'s tagged fields: the one feature
// whose level changes what clients do here is transaction.version
// (Kafka's levels: 1 is Transactions V1 with flexible
// __transaction_state records, 2 adds Transactions V2, KIP-890 part 2;
// franz-go, the Java client 4 and librdkafka use V2 only when its
// finalized level is 2). The level is the broker's configuration
// (--transaction-version), not a metadata record: finalizedFeaturesEpoch
// is a constant, and the brokers of a cluster are to run with one level.
const (
	transactionVersionFeature = "transaction.version"
	finalizedFeaturesEpoch    = 1
)

func (s *Server) advertiseFeatures(resp *kmsg.ApiVersionsResponse) {
	if resp.Version >= 4 {
		supported := kmsg.NewApiVersionsResponseSupportedFeature()
		supported.Name, supported.MinVersion, supported.MaxVersion = transactionVersionFeature, 0, int16(txn.V2)
		resp.SupportedFeatures = append(resp.SupportedFeatures, supported)
	}
	resp.FinalizedFeaturesEpoch = finalizedFeaturesEpoch
	finalized := kmsg.NewApiVersionsResponseFinalizedFeature()
	finalized.Name, finalized.MinVersionLevel, finalized.MaxVersionLevel = transactionVersionFeature, s.cfg.TransactionVersion, s.cfg.TransactionVersion
	resp.FinalizedFeatures = append(resp.FinalizedFeatures, finalized)
}

// unsupportedAPIVersions answers an ApiVersions request of a version this
// broker does not know as Kafka does (KIP-511): version 0 framing,
// UNSUPPORTED_VERSION and the range of ApiVersions alone, so the client
// retries with the newest version both know (and gets the features, which
// a version 0 answer cannot carry: franz-go, whose first ApiVersions is
// newer than this broker's, would otherwise never see transaction.version).
func unsupportedAPIVersions(s *Server) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	for _, k := range apiVersionsList() {
		if k.ApiKey == apiKeyVersions {
			resp.ApiKeys = append(resp.ApiKeys, k)
		}
	}
	return resp
}
