package node

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/metadata"
)

// statusPage is the read-only status page on the admin listener (GET /):
// the cluster, its brokers, every topic's partitions with their hot (local)
// and cold (remote) offset ranges drawn as bars, tiering backlog, and
// consumer-group lag. Server-rendered HTML, no script: it works in any
// browser and in a test's headless Chromium.
type statusPage struct {
	ClusterID  string
	NodeID     int32
	Controller int32
	Generated  string
	Brokers    []BrokerStatus
	Topics     []topicView
	Groups     []groupView
	GroupsErr  string
}

type topicView struct {
	Name       string
	ID         string
	Tiered     bool
	Partitions []partitionView
}

type partitionView struct {
	Index       int32
	Leader      int32
	LeaderEpoch int32
	Replicas    string
	ISR         string
	// Hosted: this node has a replica, so the offsets below are known.
	Hosted        bool
	HighWatermark int64
	LocalStart    int64
	LocalEnd      int64
	LocalBytes    int64
	RemoteStart   int64
	RemoteEnd     int64
	RemoteBytes   int64
	LagBytes      int64
	// Bars: percentages of the partition's whole range [first, end).
	ColdLeft, ColdWidth, HotLeft, HotWidth float64
}

type groupView struct {
	Group    string
	State    string
	TotalLag int64
	Lags     []groupLagView
}

type groupLagView struct {
	Topic     string
	Partition int32
	Committed int64
	End       int64
	Lag       int64
}

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"bytes": humanBytes,
	"pct":   func(f float64) string { return fmt.Sprintf("%.2f%%", f) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Strata — cluster {{.ClusterID}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;font-size:.9em}
th{background:#f4f4f4}
.bar{position:relative;width:320px;height:14px;background:#eee;border-radius:3px}
.bar div{position:absolute;top:0;height:14px}
.cold{background:#5b8ff9}
.hot{background:#f6903d}
.legend span{display:inline-block;width:12px;height:12px;margin:0 .3em 0 1em;vertical-align:middle}
.muted{color:#888}
</style></head>
<body>
<h1>Strata</h1>
<section id="cluster">
<p>Cluster <b id="cluster-id">{{.ClusterID}}</b> · this node <b id="node-id">{{.NodeID}}</b> · controller <b id="controller">{{.Controller}}</b> · <span class="muted">{{.Generated}}</span></p>
</section>
<section id="brokers">
<h2>Brokers</h2>
<table><tr><th>id</th><th>endpoints</th><th>rack</th><th>state</th><th>epoch</th></tr>
{{range .Brokers}}<tr class="broker" data-broker="{{.ID}}"><td>{{.ID}}</td><td>{{range .Endpoints}}{{.}} {{end}}</td><td>{{.Rack}}</td><td>{{if .Fenced}}fenced{{else}}alive{{end}}</td><td>{{.Epoch}}</td></tr>
{{end}}</table>
</section>
<section id="topics">
<h2>Topics</h2>
<p class="legend">offsets:<span class="cold"></span>cold (object store)<span class="hot"></span>hot (local disk)</p>
{{range $t := .Topics}}<h3 class="topic" data-topic="{{$t.Name}}">{{$t.Name}} {{if $t.Tiered}}<small>(tiered)</small>{{end}} <small class="muted">{{$t.ID}}</small></h3>
<table class="partitions"><tr><th>partition</th><th>leader</th><th>epoch</th><th>replicas</th><th>ISR</th><th>high watermark</th><th>cold (remote)</th><th>hot (local)</th><th>tiering backlog</th><th>offsets</th></tr>
{{range $t.Partitions}}<tr class="partition" data-topic="{{$t.Name}}" data-partition="{{.Index}}">
<td>{{.Index}}</td><td>{{.Leader}}</td><td>{{.LeaderEpoch}}</td><td>{{.Replicas}}</td><td>{{.ISR}}</td>
{{if .Hosted}}<td class="hw">{{.HighWatermark}}</td>
<td class="remote-range" data-start="{{.RemoteStart}}" data-end="{{.RemoteEnd}}">{{if ge .RemoteStart 0}}{{.RemoteStart}}–{{.RemoteEnd}} ({{bytes .RemoteBytes}}){{else}}—{{end}}</td>
<td class="local-range" data-start="{{.LocalStart}}" data-end="{{.LocalEnd}}">{{.LocalStart}}–{{.LocalEnd}} ({{bytes .LocalBytes}})</td>
<td class="backlog">{{bytes .LagBytes}}</td>
<td><div class="bar">{{if gt .ColdWidth 0.0}}<div class="cold" style="left:{{pct .ColdLeft}};width:{{pct .ColdWidth}}" title="cold {{.RemoteStart}}–{{.RemoteEnd}}"></div>{{end}}{{if gt .HotWidth 0.0}}<div class="hot" style="left:{{pct .HotLeft}};width:{{pct .HotWidth}}" title="hot {{.LocalStart}}–{{.LocalEnd}}"></div>{{end}}</div></td>
{{else}}<td colspan="5" class="muted">not hosted on this node: see the leader's status page</td>{{end}}
</tr>
{{end}}</table>
{{end}}</section>
<section id="groups">
<h2>Consumer groups</h2>
{{if .GroupsErr}}<p class="muted">{{.GroupsErr}}</p>{{end}}
{{range .Groups}}<h3 class="group" data-group="{{.Group}}">{{.Group}} <small>{{.State}} · lag {{.TotalLag}}</small></h3>
<table><tr><th>topic</th><th>partition</th><th>committed</th><th>end</th><th>lag</th></tr>
{{range .Lags}}<tr class="group-lag"><td>{{.Topic}}</td><td>{{.Partition}}</td><td>{{.Committed}}</td><td>{{.End}}</td><td class="lag">{{.Lag}}</td></tr>
{{end}}</table>
{{else}}{{if not .GroupsErr}}<p class="muted">no consumer groups</p>{{end}}{{end}}
</section>
</body></html>
`))

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func joinIDs(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ",")
}

// handleStatus renders the status page.
func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	state := n.store.State()
	page := statusPage{ClusterID: state.ClusterID(), NodeID: n.cfg.NodeID, Controller: -1, Generated: time.Now().UTC().Format(time.RFC3339)}
	if leader, ok := n.store.Leader(); ok {
		page.Controller = leader
	}
	page.Brokers = brokerStatuses(state)
	hosted := map[string]broker.PartitionStatus{}
	if n.broker != nil {
		for _, p := range n.broker.Partitions() {
			hosted[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = p
		}
	}
	state.EachTopic(func(t metadata.Topic) bool {
		if t.Internal {
			return true
		}
		tv := topicView{Name: t.Name, ID: fmt.Sprintf("%x", t.ID), Tiered: t.Configs["remote.storage.enable"] == "true"}
		for _, p := range t.Partitions {
			pv := partitionView{Index: p.Index, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: joinIDs(p.Replicas), ISR: joinIDs(p.ISR)}
			if st, ok := hosted[fmt.Sprintf("%s/%d", t.Name, p.Index)]; ok {
				pv.Hosted = true
				pv.HighWatermark, pv.LocalStart, pv.LocalEnd, pv.LocalBytes = st.HighWatermark, st.LocalStart, st.LocalEnd, st.LocalBytes
				pv.RemoteStart, pv.RemoteEnd, pv.RemoteBytes, pv.LagBytes = st.RemoteStart, st.RemoteEnd, st.RemoteBytes, st.TieringLagBytes
				first, end := st.LocalStart, st.LocalEnd
				if st.RemoteStart >= 0 {
					first, end = min(first, st.RemoteStart), max(end, st.RemoteEnd)
				}
				if span := float64(end - first); span > 0 {
					if st.RemoteStart >= 0 {
						pv.ColdLeft, pv.ColdWidth = 100*float64(st.RemoteStart-first)/span, 100*float64(st.RemoteEnd-st.RemoteStart)/span
					}
					pv.HotLeft, pv.HotWidth = 100*float64(st.LocalStart-first)/span, 100*float64(st.LocalEnd-st.LocalStart)/span
				}
			}
			tv.Partitions = append(tv.Partitions, pv)
		}
		page.Topics = append(page.Topics, tv)
		return true
	})
	sort.Slice(page.Topics, func(i, j int) bool { return page.Topics[i].Name < page.Topics[j].Name })
	page.Groups, page.GroupsErr = n.groupLags(r.Context())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTemplate.Execute(w, page); err != nil {
		n.log.Warn("rendering the status page failed", "err", err)
	}
}

// groupLags asks this node's own inter-broker listener, as the broker
// principal, for every group's lag (the same admin APIs
// kafka-consumer-groups.sh uses), so it sees the groups of every
// coordinator in the cluster.
func (n *Node) groupLags(ctx context.Context) ([]groupView, string) {
	if n.broker == nil {
		return nil, "this node runs no broker"
	}
	opts := n.broker.InterBrokerClientOpts()
	if opts == nil {
		return nil, "no inter-broker listener"
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err.Error()
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lags, err := kadm.NewClient(client).Lag(ctx)
	if err != nil {
		return nil, "consumer-group lag unavailable: " + err.Error()
	}
	var out []groupView
	for _, l := range lags.Sorted() {
		gv := groupView{Group: l.Group, State: l.State, TotalLag: l.Lag.Total()}
		for _, ml := range l.Lag.Sorted() {
			gv.Lags = append(gv.Lags, groupLagView{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, End: ml.End.Offset, Lag: ml.Lag})
		}
		out = append(out, gv)
	}
	return out, ""
}
