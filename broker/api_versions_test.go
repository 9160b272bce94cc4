package broker_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestApiVersionsAdvertisesTransactionVersion: ApiVersions v3+ carries the
// finalized transaction.version feature at the configured level (default
// 2), and v4 the supported range 0-2 too (v3 answers omit a supported
// feature whose min version is 0, KAFKA-17011). A client sending a newer
// ApiVersions than served (franz-go sends v5) is told the served range
// (KIP-511) and retries, so it sees the features.
func TestApiVersionsAdvertisesTransactionVersion(t *testing.T) {
	for _, c := range []struct {
		configured, want int16
	}{{0, 2}, {1, 1}, {2, 2}} {
		t.Run(fmt.Sprint("configured ", c.configured), func(t *testing.T) {
			n := brokertest.Start(t, func(cfg *broker.Config) { cfg.TransactionVersion = c.configured })
			for _, version := range []int16{3, 4, 5} {
				max := kversion.Stable()
				max.SetMaxKeyVersion(kmsg.ApiVersions.Int16(), version)
				resp := request[*kmsg.ApiVersionsResponse](t, n.Client(kgo.MaxVersions(max)), kmsg.NewPtrApiVersionsRequest())
				if want := min(version, 4); resp.Version != want {
					t.Fatalf("ApiVersions v%d answered as v%d, want v%d", version, resp.Version, want)
				}
				if resp.FinalizedFeaturesEpoch < 0 || len(resp.FinalizedFeatures) != 1 || resp.FinalizedFeatures[0].Name != "transaction.version" ||
					resp.FinalizedFeatures[0].MaxVersionLevel != c.want || resp.FinalizedFeatures[0].MinVersionLevel != c.want {
					t.Fatalf("v%d finalized features (epoch %d): %+v", resp.Version, resp.FinalizedFeaturesEpoch, resp.FinalizedFeatures)
				}
				supported := fmt.Sprint(resp.SupportedFeatures)
				if resp.Version >= 4 && (len(resp.SupportedFeatures) != 1 || resp.SupportedFeatures[0].Name != "transaction.version" ||
					resp.SupportedFeatures[0].MinVersion != 0 || resp.SupportedFeatures[0].MaxVersion != 2) {
					t.Fatalf("v%d supported features %s", resp.Version, supported)
				}
				if resp.Version == 3 && len(resp.SupportedFeatures) != 0 {
					t.Fatalf("v3 supported features %s: a min version 0 breaks v3 clients", supported)
				}
			}
		})
	}
}
