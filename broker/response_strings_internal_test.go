package broker

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFitResponseStrings: error messages over math.MaxInt16 bytes are cut
// to fit, at any depth; another string that long is an error; entries
// without strings (partitions) are not looked at.
func TestFitResponseStrings(t *testing.T) {
	long := strings.Repeat("é", math.MaxInt16) // cut on a rune boundary
	resp := kmsg.NewPtrCreatePartitionsResponse()
	resp.Topics = []kmsg.CreatePartitionsResponseTopic{{Topic: "t", ErrorMessage: &long}, {Topic: "u"}}
	cut, err := fitResponseStrings(resp)
	if msg := *resp.Topics[0].ErrorMessage; !cut || err != nil || len(msg) > math.MaxInt16 || !strings.HasSuffix(msg, "é...") {
		t.Fatalf("cut %t, err %v, message of %d bytes", cut, err, len(msg))
	}
	if cut, err := fitResponseStrings(resp); cut || err != nil {
		t.Fatalf("again: cut %t, err %v", cut, err)
	}

	groups := kmsg.NewPtrListGroupsResponse()
	groups.Groups = []kmsg.ListGroupsResponseGroup{{Group: strings.Repeat("g", 40000)}}
	if _, err := fitResponseStrings(groups); err == nil {
		t.Fatal("a group id of 40,000 bytes fits a non-flexible ListGroups")
	}

	if holdsStrings(reflect.TypeFor[kmsg.MetadataResponseTopicPartition]()) {
		t.Fatal("Metadata partitions are walked for strings")
	}
}
