package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// api is one served Kafka API: the versions this broker implements
// completely and its handler. ApiVersions is derived from the registered
// apis, so an API that is not registered is never advertised.
type api struct {
	key        int16
	minVersion int16
	maxVersion int16
	handle     func(c *clientConn, h requestHeader, req kmsg.Request) (kmsg.Response, error)
}

var apis = map[int16]*api{}

// register adds an API. Each api_*.go file registers its own in init, next
// to the handler, so the advertised range sits beside the code serving it.
func register[Req kmsg.Request](minVersion, maxVersion int16, handle func(c *clientConn, h requestHeader, req Req) (kmsg.Response, error)) {
	var zero Req
	key := zero.Key() // Key has a pointer receiver that does not dereference
	if _, dup := apis[key]; dup {
		panic("broker: api registered twice: " + kmsg.NameForKey(key))
	}
	apis[key] = &api{
		key:        key,
		minVersion: minVersion,
		maxVersion: maxVersion,
		handle: func(c *clientConn, h requestHeader, req kmsg.Request) (kmsg.Response, error) {
			return handle(c, h, req.(Req))
		},
	}
}

func apiFor(key int16) *api { return apis[key] }

// servedAPIs returns the registered apis sorted by key.
func servedAPIs() []*api {
	out := make([]*api, 0, len(apis))
	for _, a := range apis {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}
