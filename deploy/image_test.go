package deploy_test

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/lifeline-sre/lifeline/deploy/image"
	"github.com/lifeline-sre/lifeline/sim"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// staticBinary builds lifeline as the Dockerfile does (CGO_ENABLED=0, -trimpath), once per test run.
func staticBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lifeline-image-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "lifeline")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binPath, "./cmd/lifeline")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestImage builds the image without a Docker daemon and checks it: reproducible, non-root, no shell, the binary
// and CA certificates in place; written as an OCI layout and a docker-load tarball and pushed to a registry (an
// in-process one on loopback), each read back with the same digest.
func TestImage(t *testing.T) {
	bin := staticBinary(t)
	img, err := image.Build(image.Options{Binary: bin, Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := image.Build(image.Options{Binary: bin, Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	if d2, _ := again.Digest(); d2 != digest {
		t.Errorf("two builds from the same inputs differ: %s and %s", digest, d2)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/lifeline" || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("config: user %q entrypoint %v os %s arch %s", c.User, c.Entrypoint, cf.OS, cf.Architecture)
	}
	if _, ok := c.ExposedPorts["8081/tcp"]; !ok || c.Labels["org.opencontainers.image.version"] != "1.2.3" {
		t.Errorf("config: ports %v labels %v", c.ExposedPorts, c.Labels)
	}
	files := imageFiles(t, img)
	for _, want := range []string{"lifeline", "etc/ssl/certs/ca-certificates.crt", "etc/passwd", "tmp"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the image has no %s", want)
		}
	}
	for f := range files {
		if strings.HasPrefix(f, "bin/") || strings.HasPrefix(f, "usr/bin/") || strings.HasSuffix(f, "/sh") {
			t.Errorf("the image has %s: it should have no shell or tools", f)
		}
	}
	if h := files["lifeline"]; h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Errorf("lifeline: mode %o uid %d (want executable, owned by root so that the user cannot change it)", h.Mode, h.Uid)
	}

	dir := t.TempDir()
	out := image.Outputs{OCILayout: filepath.Join(dir, "oci"), Tarball: filepath.Join(dir, "lifeline.tar"), Tag: "lifeline:1.2.3"}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	out.Push = strings.TrimPrefix(reg.URL, "http://") + "/lifeline:1.2.3"
	if err := image.Write(img, out); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(out.OCILayout)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digest {
		t.Errorf("OCI layout holds %+v, want %s", im.Manifests, digest)
	}
	tag, _ := name.NewTag("lifeline:1.2.3")
	fromTar, err := tarball.ImageFromPath(out.Tarball, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := fromTar.Digest(); d != digest {
		// docker-load tarballs keep the layers and config; the manifest is rebuilt in the Docker media types.
		if cfTar, _ := fromTar.ConfigName(); cfTar != mustConfigName(t, img) {
			t.Errorf("tarball image config %s, want %s", cfTar, mustConfigName(t, img))
		}
	}
	ref, _ := name.ParseReference(out.Push)
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pulled.Digest(); d != digest {
		t.Errorf("pulled %s, pushed %s", d, digest)
	}
	t.Logf("image %s, %d files", digest, len(files))
}

// TestImageRuns unpacks the image and runs its entrypoint as the image says (chrooted into its filesystem, as user
// 65532), serving a simulated region: ready, answering, and stopping cleanly on SIGTERM. It needs root for chroot,
// as CI has.
func TestImageRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chroot into the image's filesystem (CI runs as root)")
	}
	img, err := image.Build(image.Options{Binary: staticBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.Chmod(root, 0o755)
	unpack(t, img, root)
	s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus"), APIKey: "region-key"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	cfg := "listen: " + listen + "\nadmin: {listen: " + admin + "}\nclients: [{name: app, key: \"${APP_KEY}\"}]\n" +
		"server: {shutdown_delay: 200ms}\nregions:\n  - {name: eastus, endpoint: " + s.Region("eastus").URL() +
		", api_key: region-key, deployments: {gpt-4o: gpt-4o}}\n"
	if err := os.WriteFile(filepath.Join(root, "etc/lifeline/lifeline.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	args := append(cf.Config.Entrypoint[1:], cf.Config.Cmd...)
	cmd := exec.Command(cf.Config.Entrypoint[0], args...)
	cmd.Path = cf.Config.Entrypoint[0] // resolved inside the chroot
	cmd.Dir = "/"
	cmd.Env = append(cf.Config.Env, "APP_KEY=app-key")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: image.UID, Gid: image.GID}}
	stderr := &strings.Builder{}
	var mu sync.Mutex
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			stderr.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	defer cmd.Process.Kill()
	logs := func() string { mu.Lock(); defer mu.Unlock(); return stderr.String() }
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the image's entrypoint exited: %v\n%s", err, logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 20s\n%s", logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", "http://"+listen+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("api-key", "app-key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-lifeline-region") != "eastus" {
		t.Errorf("chat through the image: %d %s", resp.StatusCode, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM\n%s", logs())
	}
	if !regexp.MustCompile(`draining`).MatchString(logs()) {
		t.Errorf("no drain logged:\n%s", logs())
	}
}

func imageFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
	}
	return files
}

// unpack writes the image's filesystem under root, with owners and modes.
func unpack(t *testing.T, img v1.Image, root string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(f, tr)
			f.Close()
		default:
			t.Fatalf("unexpected entry %s (type %c)", h.Name, h.Typeflag)
		}
		os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode))
		os.Chown(p, h.Uid, h.Gid)
	}
}

func modeBits(m int64) os.FileMode {
	var fm os.FileMode
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

func mustConfigName(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDockerfile keeps deploy/Dockerfile in step with the daemonless build (this machine has no Docker engine to
// build it with): a static, trimmed build; a final stage with no shell, as user 65532, with the same entrypoint.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)
	if len(stages) != 3 {
		t.Fatalf("want a two-stage build, got %d stages", len(stages)-1)
	}
	build, final := stages[1], stages[2]
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/lifeline"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage lacks %s", want)
		}
	}
	for _, want := range []string{"gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532",
		`ENTRYPOINT ["/lifeline"]`, `CMD ["serve", "--config", "/etc/lifeline/lifeline.yaml"]`} {
		if !strings.Contains(final, want) {
			t.Errorf("the final stage lacks %s", want)
		}
	}
	if strings.Contains(final, "\nRUN ") {
		t.Error("the final stage runs a command: it must need no shell")
	}
}
