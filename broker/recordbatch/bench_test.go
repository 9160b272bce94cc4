package recordbatch

import "testing"

// BenchmarkValidate measures Validate on the produce path's typical batch:
// 16 records of 1 KiB (about 16 KiB), per codec. MB/s counts the batch's
// uncompressed size, so codecs compare on the same records; divide by the
// compression ratio for wire bytes.
func BenchmarkValidate(b *testing.B) {
	records := makeRecords(16, 1024, 40)
	uncompressed := mustBuild(b, BuildOptions{}, records)
	for _, codec := range codecCases {
		b.Run(codec.name, func(b *testing.B) {
			batch := mustBuild(b, BuildOptions{Codec: codec.codec, XerialSnappy: codec.xerial}, records)
			b.SetBytes(int64(len(uncompressed)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(uncompressed))/float64(len(batch)), "ratio")
		})
	}
}

// BenchmarkIterate measures the walk ListOffsets does inside one batch.
func BenchmarkIterate(b *testing.B) {
	records := makeRecords(16, 1024, 41)
	uncompressed := mustBuild(b, BuildOptions{}, records)
	for _, codec := range codecCases {
		b.Run(codec.name, func(b *testing.B) {
			batch := mustBuild(b, BuildOptions{Codec: codec.codec, XerialSnappy: codec.xerial}, records)
			b.SetBytes(int64(len(uncompressed)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Iterate(batch, func(int64, int64) bool { return true }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(uncompressed))/float64(len(batch)), "ratio")
		})
	}
}
