package broker

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A request's memory is bounded by more than its frame: a handler builds
// a response entry (and authorizes, looks up, encodes) per request entry,
// and an entry can be one byte on the wire (an empty name) while its
// response entry costs the broker a few hundred bytes. So, once a request
// is decoded and before it is handled:
//
//   - it may hold at most maxRequestElements elements (entries of its
//     arrays, at every depth, and unknown tagged fields); a larger one
//     closes the connection with a logged reason, as an unparseable
//     request does — answering it with an error per entry would be what
//     amplifies;
//   - the handler's transient memory is charged to the server's request
//     memory (queued.max.request.bytes) with the frame: the connection
//     holds frame + elements × requestElementBytes until the response is
//     encoded, so concurrent requests of many elements wait for each
//     other through that budget instead of multiplying.
const (
	// maxRequestElements is the most elements a request may hold. Kafka
	// has no such limit; real requests stay far below it: the largest
	// lists tools send are every group of a cluster (kafka-consumer-groups
	// --describe --all-groups sends one DescribeGroups with all of them;
	// clusters have thousands to tens of thousands), a follower's Fetch
	// or a producer's Produce of the partitions it leads or writes (Kafka
	// advises a few thousand per broker), an OffsetCommit/OffsetFetch of
	// a group's partitions. At requestElementBytes each, a request at the
	// limit is charged ~73 MiB, a seventh of the default
	// queued.max.request.bytes.
	maxRequestElements = 100_000
	// requestElementBytes is what a handler is charged per element: the
	// most the handlers allocate per element of a request of empty names
	// (decoded element, response entry, error message, the encoding's
	// growing buffer), 563 bytes (CreateTopics), with a margin.
	// TestRequestElementCostIsCharged measures it per API; the encoding's
	// buffer is half of it for the APIs of the largest response entries.
	requestElementBytes = 768
	// requestStringByteCharge is what a handler is charged per byte of
	// the request's strings (names, ids; not its records, which are
	// bytes): a handler copies a name several times (decoded, echoed in
	// its response entry, in the encoding's growing buffer, quoted in an
	// error message), and DescribeConfigs of 2,000-byte names allocated
	// about 12 bytes per name byte. TestRequestElementChargeWithLongNames
	// measures it.
	requestStringByteCharge = 16
)

// chargeRequestElements applies maxRequestElements and charges the
// handler's memory (elements × requestElementBytes) to the request
// memory, with the frame's bytes the connection already holds. An error
// closes the connection.
func (c *clientConn) chargeRequestElements(h requestHeader, req kmsg.Request) error {
	// Every element takes at least a byte of the frame, and a Fetch is not
	// charged (below): one of no more bytes than maxRequestElements cannot
	// exceed the limit and is not counted — a follower's Fetch of a
	// thousand partitions (~40 KB) would take ~16µs, a quarter of its
	// decoding (BenchmarkChargeRequestElements).
	if h.key == int16(kmsg.Fetch) && h.frameSize <= maxRequestElements {
		return nil
	}
	n, stringBytes := requestElementsAndStrings(req)
	if n > maxRequestElements {
		return fmt.Errorf("%s v%d request of %d elements exceeds the %d a request may hold (client %q)",
			kmsg.NameForKey(h.key), h.version, n, maxRequestElements, h.clientID)
	}
	// A Fetch's memory is its response's (record data, bounded by
	// fetch.max.bytes and the response memory); it holds its reservation
	// while it long-polls, so charging its partitions here would hold
	// request memory idle.
	if n == 0 || h.key == int16(kmsg.Fetch) || c.releaseRequest == nil {
		return nil
	}
	held := int64(h.frameSize)
	release, err := c.server.requestMemory.extend(c.ctx, c.releaseRequest, held, requestCharge(h.frameSize, n, stringBytes))
	if err != nil {
		c.releaseRequest = nil
		return fmt.Errorf("waiting for request memory: %w", err)
	}
	c.releaseRequest = release
	return nil
}

// requestCharge is what a request of frameSize bytes, n elements and
// stringBytes bytes of strings holds in request memory while it is
// handled.
func requestCharge(frameSize, n int, stringBytes int64) int64 {
	return int64(frameSize) + int64(n)*requestElementBytes + stringBytes*requestStringByteCharge
}

// requestElements counts the elements of a decoded request: the entries
// of every array at every depth (a []byte is one value, not an array) and
// the unknown tagged fields. It does not allocate.
func requestElements(req kmsg.Request) int {
	n, _ := requestElementsAndStrings(req)
	return n
}

// requestElementsAndStrings is requestElements and the bytes of the
// request's strings (string and *string fields, []string entries).
func requestElementsAndStrings(req kmsg.Request) (n int, stringBytes int64) {
	v := reflect.ValueOf(req)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return 0, 0
	}
	v = v.Elem()
	return countElements(v, planFor(v.Type()))
}

// elementPlan says where in a struct type elements can be: the fields
// that are arrays, structs or pointers to structs, and the unknown tags.
type elementPlan struct {
	fields []elementField
	tags   int // index of the kmsg.Tags field, or -1
	// strings and stringPtrs are the indexes of the string and *string
	// fields.
	strings, stringPtrs []int
}

type elementField struct {
	index int
	kind  reflect.Kind // Slice, Struct or Pointer
	// elem is the plan of the struct a field holds, points to, or whose
	// array it is; nil for an array of scalars or strings.
	elem *elementPlan
}

var (
	tagsType     = reflect.TypeFor[kmsg.Tags]()
	elementPlans sync.Map // reflect.Type → *elementPlan
)

func planFor(t reflect.Type) *elementPlan {
	if p, ok := elementPlans.Load(t); ok {
		return p.(*elementPlan)
	}
	p, _ := elementPlans.LoadOrStore(t, buildPlan(t))
	return p.(*elementPlan)
}

// buildPlan builds t's plan (kmsg types are not recursive).
func buildPlan(t reflect.Type) *elementPlan {
	p := &elementPlan{tags: -1}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		switch ft := f.Type; {
		case ft == tagsType:
			p.tags = i
		case ft.Kind() == reflect.String:
			p.strings = append(p.strings, i)
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.String:
			p.stringPtrs = append(p.stringPtrs, i)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8:
			var elem *elementPlan
			switch ft.Elem().Kind() {
			case reflect.Struct:
				elem = buildPlan(ft.Elem())
			case reflect.String:
				elem = stringsPlan
			}
			p.fields = append(p.fields, elementField{index: i, kind: reflect.Slice, elem: elem})
		case ft.Kind() == reflect.Struct:
			p.fields = append(p.fields, elementField{index: i, kind: reflect.Struct, elem: buildPlan(ft)})
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			p.fields = append(p.fields, elementField{index: i, kind: reflect.Pointer, elem: buildPlan(ft.Elem())})
		}
	}
	return p
}

// stringsPlan marks an array of strings: its entries' bytes are counted.
var stringsPlan = &elementPlan{tags: -1}

func countElements(v reflect.Value, p *elementPlan) (n int, stringBytes int64) {
	if p.tags >= 0 {
		n += v.Field(p.tags).Addr().Interface().(*kmsg.Tags).Len()
	}
	for _, i := range p.strings {
		stringBytes += int64(v.Field(i).Len())
	}
	for _, i := range p.stringPtrs {
		if fv := v.Field(i); !fv.IsNil() {
			stringBytes += int64(fv.Elem().Len())
		}
	}
	add := func(elements int, bytes int64) {
		n += elements
		stringBytes += bytes
	}
	for _, f := range p.fields {
		fv := v.Field(f.index)
		switch f.kind {
		case reflect.Slice:
			l := fv.Len()
			n += l
			switch {
			case f.elem == stringsPlan:
				for i := range l {
					stringBytes += int64(fv.Index(i).Len())
				}
			case f.elem != nil:
				for i := range l {
					add(countElements(fv.Index(i), f.elem))
				}
			}
		case reflect.Struct:
			add(countElements(fv, f.elem))
		case reflect.Pointer:
			if !fv.IsNil() {
				add(countElements(fv.Elem(), f.elem))
			}
		}
	}
	return n, stringBytes
}
