// Package image builds Lifeline's container image without a Docker daemon, with go-containerregistry: one layer
// holding the static `lifeline` binary, the CA certificates, and passwd and group files for the non-root user
// 65532, on no base image at all (no shell, no package manager). The result is the same as the final stage of
// deploy/Dockerfile and reproducible: the same inputs give the same digest.
package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID of the user the image runs as (distroless's "nonroot").
const UID, GID = 65532, 65532

// Options say what goes into the image.
type Options struct {
	// Binary is the path of a statically linked lifeline binary (CGO_ENABLED=0). Required.
	Binary string
	// CACerts is the PEM bundle the gateway trusts for regions' TLS. Empty: /etc/ssl/certs/ca-certificates.crt.
	CACerts string
	// Version goes into the image's labels. Empty: "dev".
	Version string
	// Created is the time stamped on the image and its files. Zero: the Unix epoch, for reproducible digests.
	Created time.Time
	// Source is the repository URL for the org.opencontainers.image.source label. Empty: none.
	Source string
}

// Build makes the image.
func Build(o Options) (v1.Image, error) {
	arch, err := staticArch(o.Binary)
	if err != nil {
		return nil, err
	}
	if o.CACerts == "" {
		o.CACerts = "/etc/ssl/certs/ca-certificates.crt"
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	o.Created = o.Created.UTC()
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	rootfs, err := rootFS(o.Created, bin, certs)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rootfs)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: o.Created}
	cf.History = []v1.History{{Created: v1.Time{Time: o.Created}, CreatedBy: "lifeline-image (deploy/cmd/lifeline-image)",
		Comment: "static lifeline binary, CA certificates, user nonroot"}}
	labels := map[string]string{
		"org.opencontainers.image.title":       "lifeline",
		"org.opencontainers.image.description": "Lifeline: keeps applications that call Azure OpenAI answering when a region fails",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.created":     o.Created.Format(time.RFC3339),
	}
	if o.Source != "" {
		labels["org.opencontainers.image.source"] = o.Source
	}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint:   []string{"/lifeline"},
		Cmd:          []string{"serve", "--config", "/etc/lifeline/lifeline.yaml"},
		WorkingDir:   "/",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "8081/tcp": {}},
		Env:          []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		Labels:       labels,
		StopSignal:   "SIGTERM",
	}
	return mutate.ConfigFile(img, cf)
}

// staticArch checks that path is a statically linked Linux ELF executable and returns its GOARCH.
func staticArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("binary %s is dynamically linked: build it with CGO_ENABLED=0", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return "", fmt.Errorf("binary %s needs shared libraries %v: build it with CGO_ENABLED=0", path, libs)
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("binary %s: unsupported machine %s", path, f.Machine)
}

// rootFS is the image's one layer, as an uncompressed tar with fixed times and owners.
func rootFS(t time.Time, bin, certs []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: t, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: t, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err := errors.Join(
		dir("etc/", 0o755, 0),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")),
		file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
		dir("etc/lifeline/", 0o755, 0),
		dir("etc/ssl/", 0o755, 0),
		dir("etc/ssl/certs/", 0o755, 0),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, certs),
		dir("home/", 0o755, 0),
		dir("home/nonroot/", 0o700, UID),
		dir("tmp/", 0o1777, 0),
		file("lifeline", 0o755, bin),
	)
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Outputs say where Write puts an image; empty fields are skipped.
type Outputs struct {
	// OCILayout is a directory to write an OCI image layout to (for skopeo, crane, oras, containerd).
	OCILayout string
	// Tarball is a file to write for `docker load` / `podman load`, with the image named Tag.
	Tarball string
	Tag     string
	// Push is a reference (registry/repo:tag) to push to, with the credentials of ~/.docker/config.json.
	Push string
}

// Write stores img where o says.
func Write(img v1.Image, o Outputs) error {
	if o.OCILayout != "" {
		p, err := layout.Write(o.OCILayout, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.Tag})); err != nil {
			return err
		}
	}
	if o.Tarball != "" {
		ref, err := name.NewTag(o.Tag)
		if err != nil {
			return fmt.Errorf("tag: %w", err)
		}
		if err := tarball.WriteToFile(o.Tarball, ref, img); err != nil {
			return err
		}
	}
	if o.Push != "" {
		ref, err := name.ParseReference(o.Push)
		if err != nil {
			return fmt.Errorf("push: %w", err)
		}
		if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return nil
}
