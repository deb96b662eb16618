package state_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nginxLB runs Debian's nginx on a free loopback port as the load balancer in front of addrs, configured as
// docs/deploy.md advises.
func nginxLB(t *testing.T, addrs []string) string {
	url, _ := startNginx(t, addrs)
	return url
}

// startNginx is nginxLB, also returning the path of nginx's error log.
func startNginx(t *testing.T, addrs []string) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("nginx is required (Debian package nginx; scripts/setup.sh installs it)")
		}
	}
	dir := t.TempDir()
	lb := freeAddr(t)
	var servers strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&servers, "    server %s max_fails=1 fail_timeout=2s;\n", a)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	conf := user + `worker_processes 1;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ` + dir + `/body;
  proxy_temp_path ` + dir + `/proxy;
  fastcgi_temp_path ` + dir + `/fastcgi;
  uwsgi_temp_path ` + dir + `/uwsgi;
  scgi_temp_path ` + dir + `/scgi;
  upstream lifeline {
` + servers.String() + `    keepalive 32;
  }
  server {
    listen ` + lb + `;
    location / {
      proxy_pass http://lifeline;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 60s;
      proxy_next_upstream error non_idempotent;
      proxy_next_upstream_tries 3;
    }
  }
}
`
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-e", filepath.Join(dir, "error.log"), "-c", path, "-g", "daemon off;")
	out, err := os.Create(filepath.Join(dir, "output.log")) // a file, not a pipe: workers must not hold Wait up
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: the master stops its workers
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever is left of the group
	})
	eventually(t, "nginx to listen", 10*time.Second, func() bool {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			o, _ := os.ReadFile(filepath.Join(dir, "output.log"))
			t.Fatalf("nginx exited: %s\n%s", o, log)
		default:
		}
		c, err := net.Dial("tcp", lb)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://" + lb, filepath.Join(dir, "error.log")
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

// TestRollingRestartBehindNginx restarts three replicas one after the other behind Debian's nginx while steady
// mixed traffic (non-streaming requests and streams) flows: no request is lost and no stream is cut. Each
// replica drains as on SIGTERM (server.shutdown_delay 1s, then in-flight requests finish) and its successor
// binds the same port.
func TestRollingRestartBehindNginx(t *testing.T) {
	p := "test:" + t.Name() + ":"
	var listens, admins []string
	rs := make([]*gw, 3)
	for range rs {
		listens, admins = append(listens, freeAddr(t)), append(admins, freeAddr(t))
	}
	start := func(i int) *gw {
		return startGW(t, p, fmt.Sprintf("r%d", i+1), replicaOpts{listen: listens[i], admin: admins[i], delay: time.Second})
	}
	for i := range rs {
		rs[i] = start(i)
	}
	lb, errLog := startNginx(t, listens)

	var sent, streams, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	fail := func(s string) {
		failed.Add(1)
		mu.Lock()
		if len(failures) < 10 {
			failures = append(failures, s)
		}
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				stream := w%2 == 0
				body := chatBody
				if stream {
					body = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"sim:tokens=60"}]}`
				}
				req, _ := http.NewRequest("POST", lb+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("api-key", clientKey)
				req.Header.Set("Content-Type", "application/json")
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					continue
				}
				if resp.StatusCode != 200 {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					fail(fmt.Sprintf("status %d: %s", resp.StatusCode, b))
					continue
				}
				if stream {
					streams.Add(1)
					if ok, tail := readStream(resp.Body); !ok {
						fail("stream cut: " + tail)
					}
				} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					fail(err.Error())
				}
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	for i := range rs {
		rs[i].stop() // SIGTERM: drain for 1s, then finish what is in flight
		rs[i] = start(i)
		eventually(t, rs[i].name+" ready again", 10*time.Second, func() bool {
			r, err := http.Get(rs[i].adminURL + "/readyz")
			if err != nil {
				return false
			}
			r.Body.Close()
			return r.StatusCode == 200
		})
		time.Sleep(2500 * time.Millisecond) // past nginx's fail_timeout for the replica just restarted
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		log, _ := os.ReadFile(errLog)
		t.Errorf("%d of %d requests failed during the rolling restart: %q\nnginx error log:\n%s", failed.Load(), sent.Load(), failures, log)
	}
	if streams.Load() == 0 || sent.Load() < 30 {
		t.Errorf("too little traffic to judge: %d requests, %d streams", sent.Load(), streams.Load())
	}
	t.Logf("%d requests (%d streams) through nginx during a rolling restart of 3 replicas, %d failed", sent.Load(), streams.Load(), failed.Load())
}
