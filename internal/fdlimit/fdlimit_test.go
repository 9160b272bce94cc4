package fdlimit

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestOpenCountsDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("descriptor counting is checked on Linux")
	}
	limit, ok := Limit()
	if !ok || limit == 0 {
		t.Fatalf("Limit() = %d, %v", limit, ok)
	}
	before, ok := Open()
	if !ok {
		t.Fatal("Open() cannot count")
	}
	var files []*os.File
	for i := range 10 {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	after, _ := Open()
	for _, f := range files {
		f.Close()
	}
	// Other goroutines of the test binary may open or close a few.
	if after-before < 10 {
		t.Fatalf("10 more open files counted as %d more (%d → %d)", after-before, before, after)
	}
	if uint64(after) > limit {
		t.Fatalf("%d open, limit %d", after, limit)
	}
}
