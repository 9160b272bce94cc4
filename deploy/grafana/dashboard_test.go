// Package grafana holds the Grafana provisioning files; its test checks
// the dashboard.
package grafana

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		GridPos struct {
			X, Y, W, H int
		} `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

var metricName = regexp.MustCompile(`\bstrata_[a-z0-9_]+`)

// TestDashboard: the dashboard is valid JSON with unique panel ids,
// panels that do not overlap on the grid, and queries that name only
// metrics some (non-test) Go source of the repository defines, so a
// renamed or misspelled metric fails here rather than showing an empty
// panel.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile("dashboards/strata.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without uid, title or panels: %+v", d)
	}
	source := goSource(t, filepath.Join("..", ".."))
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, target := range p.Targets {
			if target.Expr == "" || target.RefID == "" || refs[target.RefID] {
				t.Errorf("panel %q: query %+v without expr, without refId or with a repeated one", p.Title, target)
			}
			refs[target.RefID] = true
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				defined := strings.TrimPrefix(name, "strata_")
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					defined = strings.TrimSuffix(defined, suffix)
				}
				if !strings.Contains(source, `"`+defined+`"`) && !strings.Contains(source, `"strata_`+defined+`"`) {
					t.Errorf("panel %q: metric %s is defined nowhere in the Go source", p.Title, name)
				}
			}
		}
	}
}

// goSource returns the non-test Go files under root, concatenated.
func goSource(t *testing.T, root string) string {
	var all strings.Builder
	err := filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entry.IsDir() && (strings.HasPrefix(entry.Name(), ".") || entry.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if entry.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		all.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.String()
}
