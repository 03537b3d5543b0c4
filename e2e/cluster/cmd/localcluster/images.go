package main

// The local image store (one OCI image layout, see the README) and the
// unpacked root filesystems of its images.
//
// A pod's image reference is matched to a tag of the store by imageTag; an
// image is unpacked once per manifest digest into
// <rootfs-cache>/<digest-hex>/rootfs (never written afterwards: containers
// get an overlayfs on top).

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageStore reads an OCI image layout; index.json is re-read when it changes.
type imageStore struct {
	dir      string
	cacheDir string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	tags    map[string]imagespec.Descriptor // tag -> manifest (or index) descriptor
	unpack  map[string]*sync.Mutex          // digest -> unpack lock
}

func defaultImageStore() string {
	if dir := os.Getenv("MESH_IMAGE_STORE"); dir != "" {
		return dir
	}
	return filepath.Join(homeDir(), ".cache", "mesh-operator", "images")
}

func defaultRootfsCache() string {
	return filepath.Join(homeDir(), ".cache", "mesh-operator", "rootfs")
}

func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	return os.TempDir()
}

func newImageStore(dir, cacheDir string) *imageStore {
	return &imageStore{dir: dir, cacheDir: cacheDir, unpack: map[string]*sync.Mutex{}}
}

// imageTag turns a pod's image reference into the store's tag (see the README).
func imageTag(ref string) string {
	for _, prefix := range []string{"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/", "library/"} {
		if strings.HasPrefix(ref, prefix) {
			ref = strings.TrimPrefix(ref, prefix)
			break
		}
	}
	if strings.Contains(ref, "@") {
		return ref
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.Contains(last, ":") {
		ref += ":latest"
	}
	return ref
}

// refresh re-reads index.json if it changed since the last read.
func (s *imageStore) refresh() error {
	st, err := os.Stat(filepath.Join(s.dir, "index.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			s.tags = nil
			return nil
		}
		return err
	}
	if s.tags != nil && st.ModTime().Equal(s.modTime) && st.Size() == s.size {
		return nil
	}
	var index imagespec.Index
	if err := readJSON(filepath.Join(s.dir, "index.json"), &index); err != nil {
		return err
	}
	tags := map[string]imagespec.Descriptor{}
	for _, m := range index.Manifests {
		if name := m.Annotations[imagespec.AnnotationRefName]; name != "" {
			tags[name] = m
		}
	}
	s.tags, s.modTime, s.size = tags, st.ModTime(), st.Size()
	return nil
}

// lookup returns the descriptor of a pod's image, if the store has it.
func (s *imageStore) lookup(ref string) (imagespec.Descriptor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return imagespec.Descriptor{}, false
	}
	tag := imageTag(ref)
	if _, dgst, ok := strings.Cut(tag, "@"); ok {
		for _, d := range s.tags {
			if d.Digest.String() == dgst {
				return d, true
			}
		}
		return imagespec.Descriptor{}, false
	}
	d, ok := s.tags[tag]
	return d, ok
}

func (s *imageStore) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// image is an unpacked image: its root filesystem and its config.
type image struct {
	digest digest.Digest // manifest digest
	rootfs string
	config imagespec.ImageConfig
}

// resolveManifest follows an index to its linux/amd64 manifest.
func (s *imageStore) resolveManifest(d imagespec.Descriptor) (imagespec.Manifest, digest.Digest, error) {
	for range 4 {
		if d.MediaType == imagespec.MediaTypeImageIndex || d.MediaType == "application/vnd.docker.distribution.manifest.list.v2+json" {
			var idx imagespec.Index
			if err := readJSON(s.blobPath(d.Digest), &idx); err != nil {
				return imagespec.Manifest{}, "", err
			}
			found := false
			for _, m := range idx.Manifests {
				if m.Platform == nil || (m.Platform.OS == "linux" && m.Platform.Architecture == "amd64") {
					d, found = m, true
					break
				}
			}
			if !found {
				return imagespec.Manifest{}, "", fmt.Errorf("image index %s has no linux/amd64 manifest", d.Digest)
			}
			continue
		}
		var m imagespec.Manifest
		err := readJSON(s.blobPath(d.Digest), &m)
		return m, d.Digest, err
	}
	return imagespec.Manifest{}, "", errors.New("image index nested too deeply")
}

// get unpacks (once) and returns the image for a reference found by lookup.
func (s *imageStore) get(ref string) (*image, error) {
	d, ok := s.lookup(ref)
	if !ok {
		return nil, fmt.Errorf("image %q (tag %q) is not in the local image store %s", ref, imageTag(ref), s.dir)
	}
	manifest, mdigest, err := s.resolveManifest(d)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	var cfg imagespec.Image
	if err := readJSON(s.blobPath(manifest.Config.Digest), &cfg); err != nil {
		return nil, fmt.Errorf("image %q config: %w", ref, err)
	}
	dir := filepath.Join(s.cacheDir, mdigest.Encoded())
	rootfs := filepath.Join(dir, "rootfs")

	s.mu.Lock()
	lock := s.unpack[mdigest.String()]
	if lock == nil {
		lock = &sync.Mutex{}
		s.unpack[mdigest.String()] = lock
	}
	s.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	if _, err := os.Stat(rootfs); err != nil {
		if err := os.MkdirAll(s.cacheDir, 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(s.cacheDir, ".unpack-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		tmpRoot := filepath.Join(tmp, "rootfs")
		if err := os.Mkdir(tmpRoot, 0o755); err != nil {
			return nil, err
		}
		for _, layer := range manifest.Layers {
			if err := s.extractLayer(layer, tmpRoot); err != nil {
				return nil, fmt.Errorf("image %q layer %s: %w", ref, layer.Digest, err)
			}
		}
		_ = os.RemoveAll(dir) // a half-finished unpack of another process
		if err := os.Rename(tmp, dir); err != nil {
			return nil, err
		}
	}
	return &image{digest: mdigest, rootfs: rootfs, config: cfg.Config}, nil
}

func (s *imageStore) extractLayer(layer imagespec.Descriptor, root string) error {
	f, err := os.Open(s.blobPath(layer.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(layer.MediaType, "+gzip") || strings.HasSuffix(layer.MediaType, ".gzip"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	case strings.HasSuffix(layer.MediaType, "+zstd"):
		return fmt.Errorf("zstd layers are not supported (%s)", layer.MediaType)
	}
	return untar(tar.NewReader(r), root)
}

// untar applies one layer: whiteouts remove, everything else is created with
// its owner and mode. Paths that would leave root (.. or through a symlink)
// are refused.
func untar(tr *tar.Reader, root string) error {
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		dir, base := filepath.Split(name)
		if err := checkNoSymlink(root, dir); err != nil {
			return err
		}
		target := filepath.Join(root, name)
		if base == ".wh..wh..opq" {
			entries, _ := os.ReadDir(filepath.Dir(target))
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join(filepath.Dir(target), e.Name()))
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			_ = os.RemoveAll(filepath.Join(root, dir, strings.TrimPrefix(base, ".wh.")))
			continue
		}
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(h.Mode & 0o7777)
		if st, err := os.Lstat(target); err == nil && !(st.IsDir() && h.Typeflag == tar.TypeDir) {
			_ = os.RemoveAll(target)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode); err != nil {
				return err
			}
		case tar.TypeReg:
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src := filepath.Join(root, filepath.Clean("/"+h.Linkname))
			if err := checkNoSymlink(root, filepath.Dir(filepath.Clean("/"+h.Linkname))); err != nil {
				return err
			}
			if err := os.Link(src, target); err != nil {
				return err
			}
		default:
			continue // devices, fifos: not needed by the static images we run
		}
		_ = os.Lchown(target, h.Uid, h.Gid)
		if h.Typeflag != tar.TypeSymlink {
			_ = os.Chmod(target, mode)
		}
	}
}

// checkNoSymlink refuses a directory path inside root that has a symlink in
// it: writing through one could leave root.
func checkNoSymlink(root, dir string) error {
	p := root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		if err != nil {
			return nil // does not exist yet: created as a directory
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("layer entry below symlink %s refused", strings.TrimPrefix(p, root))
		}
	}
	return nil
}
