// Package redistest runs a real redis-server (Debian's package; scripts/setup.sh installs it) on a free loopback
// port for tests, without persistence, and can kill and restart it on the same port to test outages.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is one redis-server process.
type Server struct {
	Addr string // 127.0.0.1:port

	mu   sync.Mutex
	cmd  *exec.Cmd
	port int
	dir  string
}

// Start runs redis-server on a free port and waits until it answers. It fails when redis-server is not installed
// (apt-get install redis-server).
func Start() (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redistest: redis-server not found; run scripts/setup.sh (Debian: apt-get install redis-server)")
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	for range 5 { // a port found free may be taken before redis binds it
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if err = s.start(); err == nil {
			s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, errors.New("redistest: could not start redis-server")
}

func (s *Server) start() error {
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", s.dir, "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { // drain its output so that it never blocks on a full pipe
		sc := bufio.NewScanner(out)
		for sc.Scan() {
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping("127.0.0.1:"+strconv.Itoa(s.port)) == nil {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			return nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return fmt.Errorf("redistest: redis-server on port %d did not answer", s.port)
}

// ping sends PING in the inline protocol and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redistest: PING answered %q", line)
	}
	return nil
}

// Kill ends the server at once (SIGKILL), as a crash would: its data is gone.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// Restart starts a new, empty server on the same port.
func (s *Server) Restart() error {
	s.Kill()
	var err error
	for range 50 { // the port may take a moment to be free again
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Kill()
	os.RemoveAll(s.dir)
}
