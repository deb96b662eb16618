package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lifeline-sre/lifeline/internal/stacktest"
)

// chromium finds Debian's Chromium (or Chrome). Its absence fails the test: scripts/setup.sh installs it, and the
// status page is a feature that this test is the proof of.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install it (Debian: apt-get install chromium; scripts/setup.sh does it)")
	return ""
}

// TestStatusPage opens the live status page in headless Chromium, disables a region through the admin API, and
// waits for the page to show the new state without a reload. It saves a screenshot to
// $LIFELINE_SCREENSHOT (default: e2e/out/status-page.png).
func TestStatusPage(t *testing.T) {
	st := stacktest.Start(t, []string{"eastus", "westus", "swedencentral"}, "")
	// Some traffic, so the page has shares and latencies to show.
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("POST", st.URL+"/openai/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("api-key", stacktest.ClientKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	statusURL := st.AdminURL + "/status?key=" + stacktest.AdminKey
	if err := chromedp.Do(ctx, chromedp.Navigate(statusURL)); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	if err := waitState(ctx, "eastus", "healthy"); err != nil {
		t.Fatalf("status page never showed eastus healthy: %v\npage text:\n%s", err, pageText(ctx))
	}
	if text := pageText(ctx); !strings.Contains(text, "westus") || !strings.Contains(text, "swedencentral") {
		t.Errorf("status page lacks regions:\n%s", text)
	}

	req, _ := http.NewRequest("POST", st.AdminURL+"/admin/regions/eastus/disable", nil)
	req.Header.Set("Authorization", "Bearer "+stacktest.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("disable: status %d", resp.StatusCode)
	}

	// The page polls the admin API: the row must change without a reload.
	if err := waitState(ctx, "eastus", "disabled"); err != nil {
		t.Fatalf("status page never showed eastus disabled without a reload: %v\npage text:\n%s", err, pageText(ctx))
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 means PNG
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("LIFELINE_SCREENSHOT")
	if out == "" {
		out = filepath.Join("out", "status-page.png")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s (%d bytes)", out, len(png))
	if len(png) < 10_000 {
		t.Errorf("screenshot is suspiciously small: %d bytes", len(png))
	}
}

// waitState waits until the status page's row for region shows state in its state cell.
func waitState(ctx context.Context, region, state string) error {
	expr := fmt.Sprintf(`(() => {
		for (const tr of document.querySelectorAll("tr")) {
			const td = tr.querySelectorAll("td");
			if (td.length > 1 && td[0].textContent.trim() === %q && td[1].textContent.trim() === %q) return true;
		}
		return false;
	})()`, region, state)
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr))
	return err
}

func pageText(ctx context.Context) string {
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	return text
}
