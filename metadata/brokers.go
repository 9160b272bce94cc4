package metadata

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// BrokerEndpoint is one named listener a broker advertises.
type BrokerEndpoint struct {
	// Listener is the listener name, e.g. "CLIENT" or "INTERNAL"; unique
	// within a broker.
	Listener string
	// Host is the advertised host name or address.
	Host string
	// Port is the advertised port, 1..65535.
	Port int32
	// SecurityProtocol is Kafka's name of the listener's security protocol,
	// e.g. "PLAINTEXT".
	SecurityProtocol string
}

// BrokerRegistration is what a broker process announces when it starts:
// RegisterBroker's payload.
type BrokerRegistration struct {
	// ID is the broker's node id, 0 or more.
	ID int32
	// IncarnationID identifies one run of the broker process: a new random
	// UUID at every start, never all zeros.
	IncarnationID [16]byte
	// Endpoints are the advertised listeners, at least one, with unique
	// names, in the order the broker lists them.
	Endpoints []BrokerEndpoint
	// Rack is the broker's rack, "" for none.
	Rack string
	// DirectoryID is the id of the broker's data directory (written once
	// at format, Store.DirectoryID); all zeros from brokers that predate
	// it. A new incarnation with the directory id of the current
	// registration is the same disk restarted: it replaces that
	// registration at once, whatever its session. Another directory id is
	// another process, refused while the registration's session lives
	// (ErrDuplicateBroker).
	DirectoryID [16]byte
	// CleanShutdown reports that the previous process on this directory
	// stopped cleanly (it flushed every log and left its clean-shutdown
	// marker), so its logs hold everything it acknowledged. A broker that
	// did not (a crash, a power loss) leaves every ISR when it registers
	// (KIP-966): its log may have lost its unsynced tail. So does one
	// whose directory is not the current registration's, clean or not:
	// the ISRs it is in were earned by the logs of another directory
	// (a replaced disk, a directory restored from a backup, another
	// broker's old disk), which this one may lag.
	CleanShutdown bool
}

// Broker is the replicated registration of one broker.
//
// A Broker obtained from a State is shared with every other reader of that
// State: treat its Endpoints as read-only.
type Broker struct {
	ID            int32
	IncarnationID [16]byte
	Endpoints     []BrokerEndpoint
	Rack          string
	// DirectoryID is the registration's BrokerRegistration.DirectoryID.
	DirectoryID [16]byte
	// Fenced brokers lead no partition and are kept out of new ISRs. A
	// registration starts fenced; the controller unfences the broker once
	// it has caught up with the metadata, and fences it when its session
	// ends.
	Fenced bool
	// Epoch is the broker epoch: the Raft log index of the RegisterBroker
	// command that created this registration. It identifies the
	// registration, so commands aimed at an earlier incarnation of the same
	// broker id are rejected (ErrStaleBrokerEpoch).
	Epoch int64
}

// Endpoint returns the endpoint of the named listener.
func (b Broker) Endpoint(listener string) (BrokerEndpoint, bool) {
	for _, endpoint := range b.Endpoints {
		if endpoint.Listener == listener {
			return endpoint, true
		}
	}
	return BrokerEndpoint{}, false
}

// AnyBrokerEpoch, as the broker epoch of UnregisterBroker, matches whatever
// registration the broker id has.
const AnyBrokerEpoch int64 = -1

// brokerKey is the radix-tree key of a broker id: big-endian, so that the
// tree (ids are never negative) iterates in id order.
func brokerKey(id int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(id)) }

// Broker returns the registration of broker id.
func (s *State) Broker(id int32) (Broker, bool) {
	if id < 0 {
		return Broker{}, false
	}
	broker, ok := s.brokers.Get(brokerKey(id))
	if !ok {
		return Broker{}, false
	}
	return *broker, true
}

// BrokerCount returns the number of registered brokers.
func (s *State) BrokerCount() int { return s.brokers.Len() }

// Brokers returns every registered broker sorted by id.
func (s *State) Brokers() []Broker {
	brokers := make([]Broker, 0, s.brokers.Len())
	s.EachBroker(func(broker Broker) bool {
		brokers = append(brokers, broker)
		return true
	})
	return brokers
}

// EachBroker calls fn for every registered broker in id order until fn
// returns false.
func (s *State) EachBroker(fn func(Broker) bool) {
	iterator := s.brokers.Root().Iterator()
	for _, broker, ok := iterator.Next(); ok; _, broker, ok = iterator.Next() {
		if !fn(*broker) {
			return
		}
	}
}

func (b *stateBuilder) broker(id int32) (*Broker, bool) {
	if id < 0 {
		return nil, false
	}
	return b.brokers.Get(brokerKey(id))
}

// validateBrokerRegistration checks what the state machine relies on; the
// proposer checks host names and protocols more closely.
func validateBrokerRegistration(registration *BrokerRegistration) error {
	if registration.ID < 0 {
		return fmt.Errorf("%w: negative broker id %d", ErrInvalidBroker, registration.ID)
	}
	if registration.IncarnationID == ([16]byte{}) {
		return fmt.Errorf("%w: broker %d: zero incarnation id", ErrInvalidBroker, registration.ID)
	}
	if len(registration.Endpoints) == 0 {
		return fmt.Errorf("%w: broker %d: no endpoints", ErrInvalidBroker, registration.ID)
	}
	for i, endpoint := range registration.Endpoints {
		switch {
		case endpoint.Listener == "":
			return fmt.Errorf("%w: broker %d: endpoint %d has no listener name", ErrInvalidBroker, registration.ID, i)
		case endpoint.Host == "":
			return fmt.Errorf("%w: broker %d: listener %q has no host", ErrInvalidBroker, registration.ID, endpoint.Listener)
		case endpoint.Port < 1 || endpoint.Port > 65535:
			return fmt.Errorf("%w: broker %d: listener %q has port %d", ErrInvalidBroker, registration.ID, endpoint.Listener, endpoint.Port)
		case endpoint.SecurityProtocol == "":
			return fmt.Errorf("%w: broker %d: listener %q has no security protocol", ErrInvalidBroker, registration.ID, endpoint.Listener)
		}
		for _, earlier := range registration.Endpoints[:i] {
			if earlier.Listener == endpoint.Listener {
				return fmt.Errorf("%w: broker %d: listener %q appears twice", ErrInvalidBroker, registration.ID, endpoint.Listener)
			}
		}
	}
	return nil
}

// minimumEndpointSize is the fewest bytes an encoded endpoint takes.
const minimumEndpointSize = 1 + 1 + 4 + 1

func encodeEndpoints(e *encoder, endpoints []BrokerEndpoint) {
	e.uvarint(uint64(len(endpoints)))
	for _, endpoint := range endpoints {
		e.string(endpoint.Listener)
		e.string(endpoint.Host)
		e.int32(endpoint.Port)
		e.string(endpoint.SecurityProtocol)
	}
}

// decodeEndpoints returns nil for an empty list.
func decodeEndpoints(d *decoder) []BrokerEndpoint {
	n := d.length(minimumEndpointSize)
	if n == 0 {
		return nil
	}
	endpoints := make([]BrokerEndpoint, n)
	for i := range endpoints {
		endpoints[i] = BrokerEndpoint{Listener: d.string(), Host: d.string(), Port: d.int32(), SecurityProtocol: d.string()}
	}
	return endpoints
}

// encodeBroker writes a broker: the snapshot's broker record
// (recordBrokerWithDirectory), the fields of the first broker record
// (recordBroker) followed by the directory id.
func encodeBroker(e *encoder, broker *Broker) {
	e.int32(broker.ID)
	e.uuid(broker.IncarnationID)
	encodeEndpoints(e, broker.Endpoints)
	e.string(broker.Rack)
	e.bool(broker.Fenced)
	e.int64(broker.Epoch)
	e.uuid(broker.DirectoryID)
}

// decodeBroker reads a broker record; withDirectory tells
// recordBrokerWithDirectory from the first broker record, whose brokers
// have no directory id.
func decodeBroker(d *decoder, withDirectory bool) *Broker {
	broker := &Broker{
		ID:            d.int32(),
		IncarnationID: d.uuid(),
		Endpoints:     decodeEndpoints(d),
		Rack:          d.string(),
		Fenced:        d.bool(),
		Epoch:         d.int64(),
	}
	if withDirectory {
		broker.DirectoryID = d.uuid()
	}
	return broker
}

// registerBrokerCommand registers a broker process. A new incarnation (or
// a changed registration) replaces the broker's record with a fenced one
// whose epoch is the command's log index; the same registration again (a
// retry) changes nothing and answers the epoch it already has. The result
// is the broker epoch (int64).
//
// From payload version 2 on, a new registration (no record, or one of
// another incarnation) also takes back what the broker held as an earlier
// incarnation, in the same command, so that nothing it did before counts
// for the process that registers now: every partition it leads loses its
// leader (leader epoch and partition epoch increase; the controller
// elects again, from the ISR, once brokers are unfenced), and unless the
// registration reports a clean shutdown of the directory the current
// registration has (the same non-zero directory id) it leaves every ISR
// it is in, except where it is the only member (nothing else could lead:
// the partition waits for it, as it would without the change). Entries
// of earlier versions, written by earlier builds, apply as they did
// then: version 1 changes no partition, and version 2 trusts a clean
// shutdown of any directory.
//
// Payload, version 3 (version 2 has the same fields; version 1 ends after
// rack):
//
//	int32 id | uuid incarnation id | endpoints | string rack |
//	uuid directory id | bool clean shutdown
type registerBrokerCommand struct {
	registration BrokerRegistration
	// version is the payload version of a decoded entry written by an
	// earlier build (1 or 2), which applies as it did then; 0 for the
	// current version.
	version uint8
}

func (c *registerBrokerCommand) commandType() commandType { return commandRegisterBroker }
func (c *registerBrokerCommand) encode(e *encoder) {
	e.int32(c.registration.ID)
	e.uuid(c.registration.IncarnationID)
	encodeEndpoints(e, c.registration.Endpoints)
	e.string(c.registration.Rack)
	e.uuid(c.registration.DirectoryID)
	e.bool(c.registration.CleanShutdown)
}

func decodeRegisterBroker(version uint8, d *decoder) (command, bool) {
	if version < 1 || version > 3 {
		return nil, false
	}
	c := &registerBrokerCommand{registration: BrokerRegistration{
		ID:            d.int32(),
		IncarnationID: d.uuid(),
		Endpoints:     decodeEndpoints(d),
		Rack:          d.string(),
	}}
	if version < 3 {
		c.version = version
	}
	if version == 1 {
		return c, true
	}
	c.registration.DirectoryID = d.uuid()
	c.registration.CleanShutdown = d.bool()
	return c, true
}

func (c *registerBrokerCommand) apply(b *stateBuilder) (any, error) {
	registration := &c.registration
	if err := validateBrokerRegistration(registration); err != nil {
		return nil, err
	}
	existing, registered := b.broker(registration.ID)
	if registered &&
		existing.IncarnationID == registration.IncarnationID &&
		existing.Rack == registration.Rack &&
		existing.DirectoryID == registration.DirectoryID &&
		slices.Equal(existing.Endpoints, registration.Endpoints) {
		return existing.Epoch, nil
	}
	if c.version != 1 && (!registered || existing.IncarnationID != registration.IncarnationID) {
		clean := registration.CleanShutdown
		if c.version == 0 {
			clean = clean && registered && existing.DirectoryID == registration.DirectoryID &&
				registration.DirectoryID != ([16]byte{})
		}
		if err := b.releaseEarlierIncarnation(registration.ID, !clean); err != nil {
			return nil, err
		}
	}
	broker := &Broker{
		ID:            registration.ID,
		IncarnationID: registration.IncarnationID,
		Endpoints:     slices.Clone(registration.Endpoints),
		Rack:          registration.Rack,
		DirectoryID:   registration.DirectoryID,
		Fenced:        true,
		Epoch:         int64(b.index),
	}
	b.brokers.Insert(brokerKey(broker.ID), broker)
	return broker.Epoch, nil
}

// releaseEarlierIncarnation takes from broker id what an earlier
// incarnation of it held: the leadership of every partition it leads, and
// with leaveISRs its place in every ISR it shares with another replica.
func (b *stateBuilder) releaseEarlierIncarnation(id int32, leaveISRs bool) error {
	var err error
	b.base.EachTopic(func(t Topic) bool {
		for _, p := range t.Partitions {
			leads := p.Leader == id
			leaves := leaveISRs && len(p.ISR) > 1 && slices.Contains(p.ISR, id)
			if !leads && !leaves {
				continue
			}
			next := Partition{Index: p.Index, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, ISR: cloneInt32s(p.ISR)}
			if leads {
				if p.LeaderEpoch == math.MaxInt32 {
					err = fmt.Errorf("topic %q partition %d: %w: epochs exhausted", t.Name, p.Index, ErrInvalidPartitions)
					return false
				}
				next.Leader, next.LeaderEpoch = -1, p.LeaderEpoch+1
			}
			if leaves {
				next.ISR = slices.DeleteFunc(next.ISR, func(r int32) bool { return r == id })
			}
			topic, _ := b.topic(t.Name)
			if _, err = b.advancePartition(topic, next); err != nil {
				return false
			}
		}
		return true
	})
	return err
}

// lookupBroker finds a broker and checks its epoch (AnyBrokerEpoch matches
// any).
func lookupBroker(b *stateBuilder, id int32, epoch int64) (*Broker, error) {
	broker, ok := b.broker(id)
	if !ok {
		return nil, fmt.Errorf("broker %d: %w", id, ErrUnknownBroker)
	}
	if epoch != AnyBrokerEpoch && epoch != broker.Epoch {
		return nil, fmt.Errorf("broker %d has epoch %d, not %d: %w", id, broker.Epoch, epoch, ErrStaleBrokerEpoch)
	}
	return broker, nil
}

// unregisterBrokerCommand removes a broker's registration. It changes no
// partition: the controller moves leaderships and shrinks ISRs with
// ChangePartition, before or after.
type unregisterBrokerCommand struct {
	id    int32
	epoch int64 // AnyBrokerEpoch: whatever registration the id has
}

func (c *unregisterBrokerCommand) commandType() commandType { return commandUnregisterBroker }
func (c *unregisterBrokerCommand) encode(e *encoder) {
	e.int32(c.id)
	e.int64(c.epoch)
}

func decodeUnregisterBroker(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &unregisterBrokerCommand{id: d.int32(), epoch: d.int64()}, true
}

func (c *unregisterBrokerCommand) apply(b *stateBuilder) (any, error) {
	broker, err := lookupBroker(b, c.id, c.epoch)
	if err != nil {
		return nil, err
	}
	b.brokers.Delete(brokerKey(broker.ID))
	return nil, nil
}

// setBrokerFencedCommand fences or unfences one registration of a broker:
// the epoch must be the current one, so a decision about an earlier
// incarnation never applies to a later one. Setting the state the broker
// already has is a no-op.
type setBrokerFencedCommand struct {
	id     int32
	epoch  int64
	fenced bool
}

func (c *setBrokerFencedCommand) commandType() commandType { return commandSetBrokerFenced }
func (c *setBrokerFencedCommand) encode(e *encoder) {
	e.int32(c.id)
	e.int64(c.epoch)
	e.bool(c.fenced)
}

func decodeSetBrokerFenced(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &setBrokerFencedCommand{id: d.int32(), epoch: d.int64(), fenced: d.bool()}, true
}

func (c *setBrokerFencedCommand) apply(b *stateBuilder) (any, error) {
	if c.epoch < 0 {
		return nil, fmt.Errorf("broker %d: fencing needs an exact epoch, got %d: %w", c.id, c.epoch, ErrStaleBrokerEpoch)
	}
	broker, err := lookupBroker(b, c.id, c.epoch)
	if err != nil {
		return nil, err
	}
	if broker.Fenced == c.fenced {
		return nil, nil
	}
	changed := *broker
	changed.Fenced = c.fenced
	b.brokers.Insert(brokerKey(changed.ID), &changed)
	return nil, nil
}
