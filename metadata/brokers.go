package metadata

import (
	"encoding/binary"
	"fmt"
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

// encodeBroker writes a broker; the snapshot's broker record v1.
func encodeBroker(e *encoder, broker *Broker) {
	e.int32(broker.ID)
	e.uuid(broker.IncarnationID)
	encodeEndpoints(e, broker.Endpoints)
	e.string(broker.Rack)
	e.bool(broker.Fenced)
	e.int64(broker.Epoch)
}

func decodeBroker(d *decoder) *Broker {
	return &Broker{
		ID:            d.int32(),
		IncarnationID: d.uuid(),
		Endpoints:     decodeEndpoints(d),
		Rack:          d.string(),
		Fenced:        d.bool(),
		Epoch:         d.int64(),
	}
}

// registerBrokerCommand registers a broker process. A new incarnation (or
// a changed registration) replaces the broker's record with a fenced one
// whose epoch is the command's log index; the same registration again (a
// retry) changes nothing and answers the epoch it already has. The result
// is the broker epoch (int64).
type registerBrokerCommand struct {
	registration BrokerRegistration
}

func (c *registerBrokerCommand) commandType() commandType { return commandRegisterBroker }
func (c *registerBrokerCommand) encode(e *encoder) {
	e.int32(c.registration.ID)
	e.uuid(c.registration.IncarnationID)
	encodeEndpoints(e, c.registration.Endpoints)
	e.string(c.registration.Rack)
}

func decodeRegisterBroker(version uint8, d *decoder) (command, bool) {
	if version != 1 {
		return nil, false
	}
	return &registerBrokerCommand{registration: BrokerRegistration{
		ID:            d.int32(),
		IncarnationID: d.uuid(),
		Endpoints:     decodeEndpoints(d),
		Rack:          d.string(),
	}}, true
}

func (c *registerBrokerCommand) apply(b *stateBuilder) (any, error) {
	registration := &c.registration
	if err := validateBrokerRegistration(registration); err != nil {
		return nil, err
	}
	if existing, ok := b.broker(registration.ID); ok &&
		existing.IncarnationID == registration.IncarnationID &&
		existing.Rack == registration.Rack &&
		slices.Equal(existing.Endpoints, registration.Endpoints) {
		return existing.Epoch, nil
	}
	broker := &Broker{
		ID:            registration.ID,
		IncarnationID: registration.IncarnationID,
		Endpoints:     slices.Clone(registration.Endpoints),
		Rack:          registration.Rack,
		Fenced:        true,
		Epoch:         int64(b.index),
	}
	b.brokers.Insert(brokerKey(broker.ID), broker)
	return broker.Epoch, nil
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
