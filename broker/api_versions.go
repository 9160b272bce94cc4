package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiKeyVersions = 18

func init() { register(0, 3, handleAPIVersions) }

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
	return resp, nil
}

// unsupportedAPIVersions answers an ApiVersions request of a version this
// broker does not know: version 0 framing, UNSUPPORTED_VERSION and the
// supported ranges, so the client retries with a version both know.
func unsupportedAPIVersions(s *Server) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionsList()
	return resp
}
