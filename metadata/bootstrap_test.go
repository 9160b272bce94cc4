package metadata

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func goldenBootstrapCredential() ScramCredential {
	return ScramCredential{User: "admin", Mechanism: ScramSHA512, Salt: []byte("0123456789abcdef"), Iterations: 8192,
		StoredKey: bytes.Repeat([]byte{0x5a}, 64), ServerKey: bytes.Repeat([]byte{0xa5}, 64)}
}

// TestGoldenBootstrapFile pins the bootstrap file's format.
func TestGoldenBootstrapFile(t *testing.T) {
	commands := []command{&alterScramCredentialsCommand{upserts: []ScramCredential{goldenBootstrapCredential()}}}
	data := encodeBootstrap(commands)
	checkGolden(t, "bootstrap-v1-scram.bin", data)
	decoded, err := decodeBootstrap(readGolden(t, "bootstrap-v1-scram.bin"))
	if err != nil || len(decoded) != 1 || !bytes.Equal(encodeCommand(decoded[0]), encodeCommand(commands[0])) {
		t.Fatalf("decode: %v %v", decoded, err)
	}
	for name, corrupt := range map[string][]byte{
		"flipped bit":   append(append([]byte{}, data[:len(data)-1]...), data[len(data)-1]^1),
		"truncated":     data[:len(data)-3],
		"other version": append([]byte("STRB\x02"), data[5:]...),
		"no header":     []byte("STR"),
	} {
		if _, err := decodeBootstrap(corrupt); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestFormatWithScramCredentials: credentials given to Format exist once
// the cluster is first ready, and stay deleted once deleted, across a
// restart.
func TestFormatWithScramCredentials(t *testing.T) {
	dir := t.TempDir()
	address := freeAddress(t)
	credential := goldenBootstrapCredential()
	if err := Format(dir, "test-cluster", 1, map[int32]string{1: address}, WithScramCredentials(credential)); err != nil {
		t.Fatal(err)
	}
	config := testConfig(dir, address)
	store := openReady(t, config)
	got, ok := store.State().ScramCredential("admin", ScramSHA512)
	if !ok || got.Iterations != 8192 || !bytes.Equal(got.StoredKey, credential.StoredKey) {
		t.Fatalf("credential after the first start: %+v %t", got, ok)
	}
	if err := store.AlterScramCredentials(testContext(t), nil, []ScramDeletion{{User: "admin", Mechanism: ScramSHA512}}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store = openReady(t, config)
	if _, ok := store.State().ScramCredential("admin", ScramSHA512); ok {
		t.Fatal("the bootstrap credential came back after a restart")
	}
}

func TestFormatRefusesInvalidBootstrap(t *testing.T) {
	weak := goldenBootstrapCredential()
	weak.Iterations = 1000
	dir := t.TempDir()
	err := Format(dir, "test-cluster", 1, map[int32]string{1: freeAddress(t)}, WithScramCredentials(weak))
	if !errors.Is(err, ErrInvalidScramCredential) {
		t.Fatalf("weak credential: %v, want ErrInvalidScramCredential", err)
	}
	twice := goldenBootstrapCredential()
	if err := Format(dir, "test-cluster", 1, map[int32]string{1: freeAddress(t)}, WithScramCredentials(twice, twice)); !errors.Is(err, ErrInvalidScramCredential) {
		t.Fatalf("a credential named twice: %v, want ErrInvalidScramCredential", err)
	}
	if _, err := os.Stat(filepath.Join(dir, metaPropertiesFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused format left %s: %v", metaPropertiesFile, err)
	}
}

func TestOpenRefusesCorruptBootstrap(t *testing.T) {
	dir := t.TempDir()
	address := freeAddress(t)
	if err := Format(dir, "test-cluster", 1, map[int32]string{1: address}, WithScramCredentials(goldenBootstrapCredential())); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, metadataDirectory, bootstrapFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if store, err := Open(testConfig(dir, address)); !errors.Is(err, ErrCorrupt) {
		if store != nil {
			store.Close()
		}
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}
