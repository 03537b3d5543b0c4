// Command ocipack packs files into a one-layer OCI image and tags it in the local image store
// (an OCI image layout directory, see e2e/cluster/README.md).
//
//	ocipack --store DIR --tag openservicemesh/osm-controller:v1.2.4 --entrypoint /osm-controller \
//	    bin/osm-controller=/osm-controller crds/=/osm-crds/
//
// Every SRC=DEST pair copies a file, or a directory's regular files (SRC ending in /), into the
// layer. The layer and config carry no timestamps and list entries in a fixed order, so packing
// the same files again yields the same digests: a warm rebuild leaves the store unchanged.
//
// Writers take an exclusive flock on DIR/.lock around the index update, as the store's contract
// requires; blobs are written to a temporary name and renamed, so readers never see half a blob.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
)

const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Manifests     []descriptor `json:"manifests"`
}

// entry is one file of the layer.
type entry struct {
	dest string // absolute path in the image
	src  string // host path
	mode int64
}

func main() {
	store := flag.String("store", "", "OCI image layout directory (created if missing)")
	tag := flag.String("tag", "", "tag of the image in the store, e.g. openservicemesh/osm-controller:v1.2.4")
	entrypoint := flag.String("entrypoint", "", "entrypoint (space separated)")
	user := flag.String("user", "65532", "user the image runs as unless the pod says otherwise")
	flag.Parse()
	if *store == "" || *tag == "" || *entrypoint == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: ocipack --store DIR --tag TAG --entrypoint CMD SRC=DEST...")
		os.Exit(2)
	}
	if err := run(*store, *tag, strings.Fields(*entrypoint), *user, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "ocipack %s: %v\n", *tag, err)
		os.Exit(1)
	}
}

func run(store, tag string, entrypoint []string, user string, pairs []string) error {
	entries, err := collect(pairs)
	if err != nil {
		return err
	}
	layerTar, err := buildTar(entries)
	if err != nil {
		return err
	}
	layer, err := gzipped(layerTar)
	if err != nil {
		return err
	}
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"User":       user,
			"Entrypoint": entrypoint,
			"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"WorkingDir": "/",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digestOf(layerTar)}},
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(store, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	unlock, err := lock(store)
	if err != nil {
		return err
	}
	defer unlock()
	if err := ensureLayout(store); err != nil {
		return err
	}
	layerDesc, err := putBlob(store, mediaTypeLayer, layer)
	if err != nil {
		return err
	}
	configDesc, err := putBlob(store, mediaTypeConfig, config)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc, err := putBlob(store, mediaTypeManifest, manifest)
	if err != nil {
		return err
	}
	manifestDesc.Annotations = map[string]string{refNameAnnotation: tag}
	changed, err := setTag(store, tag, manifestDesc)
	if err != nil {
		return err
	}
	state := "unchanged"
	if changed {
		state = "tagged"
	}
	fmt.Fprintf(os.Stderr, "ocipack: %s %s (%s, layer %d bytes)\n", state, tag, manifestDesc.Digest, layerDesc.Size)
	return nil
}

// collect expands SRC=DEST pairs into files, sorted by destination.
func collect(pairs []string) ([]entry, error) {
	var out []entry
	for _, pair := range pairs {
		src, dest, ok := strings.Cut(pair, "=")
		if !ok || !path.IsAbs(dest) {
			return nil, fmt.Errorf("%q is not SRC=/DEST", pair)
		}
		info, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, entry{dest: path.Clean(dest), src: src, mode: fileMode(info)})
			continue
		}
		files, err := os.ReadDir(src)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !f.Type().IsRegular() {
				continue
			}
			fi, err := f.Info()
			if err != nil {
				return nil, err
			}
			out = append(out, entry{dest: path.Join(dest, f.Name()), src: filepath.Join(src, f.Name()), mode: fileMode(fi)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dest < out[j].dest })
	return out, nil
}

// fileMode keeps only whether a file is executable: files are root-owned and world-readable.
func fileMode(info os.FileInfo) int64 {
	if info.Mode()&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// buildTar writes the layer: parent directories, then the files, plus a world-writable /tmp.
func buildTar(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDir := func(dir string, mode int64) error {
		if dir == "/" || dirs[dir] {
			return nil
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: mode, Format: tar.FormatPAX})
	}
	if err := addDir("/tmp", 0o1777); err != nil {
		return nil, err
	}
	for _, e := range entries {
		var parents []string
		for d := path.Dir(e.dest); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if err := addDir(d, 0o755); err != nil {
				return nil, err
			}
		}
		data, err := os.ReadFile(e.src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(e.dest, "/"), Mode: e.mode, Size: int64(len(data)), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gzipped(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// lock takes the store's writer lock (DIR/.lock).
func lock(store string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(store, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ensureLayout creates oci-layout and an empty index.json when the store is new.
func ensureLayout(store string) error {
	layout := filepath.Join(store, "oci-layout")
	if _, err := os.Stat(layout); errors.Is(err, os.ErrNotExist) {
		if err := writeAtomic(layout, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(store, "index.json")); errors.Is(err, os.ErrNotExist) {
		return writeIndex(store, index{SchemaVersion: 2, Manifests: []descriptor{}})
	}
	return nil
}

func putBlob(store, mediaType string, data []byte) (descriptor, error) {
	d := descriptor{MediaType: mediaType, Digest: digestOf(data), Size: int64(len(data))}
	blob := filepath.Join(store, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:"))
	if info, err := os.Stat(blob); err == nil && info.Size() == d.Size {
		return d, nil
	}
	return d, writeAtomic(blob, data)
}

// setTag points tag at manifest in index.json; it reports whether the index changed.
func setTag(store, tag string, manifest descriptor) (bool, error) {
	raw, err := os.ReadFile(filepath.Join(store, "index.json"))
	if err != nil {
		return false, err
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return false, fmt.Errorf("index.json: %w", err)
	}
	kept := make([]descriptor, 0, len(idx.Manifests)+1)
	for _, m := range idx.Manifests {
		if m.Annotations[refNameAnnotation] == tag {
			if m.Digest == manifest.Digest {
				return false, nil
			}
			continue
		}
		kept = append(kept, m)
	}
	idx.Manifests = append(kept, manifest)
	return true, writeIndex(store, idx)
}

func writeIndex(store string, idx index) error {
	idx.SchemaVersion = 2
	idx.MediaType = "application/vnd.oci.image.index.v1+json"
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(store, "index.json"), data)
}

func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, bytes.NewReader(data)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
