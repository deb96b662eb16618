// Package browsertest drives the status page in headless Chromium (Debian's, which scripts/setup.sh installs) for
// end-to-end tests: open a page, wait for what it shows, read a region card's fields, take screenshots.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium finds Debian's Chromium (or Chrome). Its absence fails the test: scripts/setup.sh installs it, and the
// status page is a feature that these tests are the proof of.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install it (Debian: apt-get install chromium; scripts/setup.sh does it)")
	return ""
}

// Open starts a headless Chromium with a window of the given size and returns a tab's context (at most five
// minutes) and the function that closes it.
func Open(t testing.TB, width, height int) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	return ctx, func() { cancelTimeout(); cancelCtx(); cancelAlloc() }
}

// Field is a JavaScript expression for what a region's card shows in one of its fields (state, reason, since,
// probe, stream_errors, entra...): "" when the card or the field is not there.
func Field(region, name string) string {
	return fmt.Sprintf(`(() => { const c = document.querySelector('.card[data-region=%q]');
		const f = c && c.querySelector('[data-field=%q]'); return f ? f.textContent : ""; })()`, region, name)
}

// WaitJS polls a JavaScript condition until it holds or within runs out, and fails the test with what the page
// shows.
func WaitJS(t testing.TB, ctx context.Context, what, cond string, within time.Duration) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Fatalf("the status page never showed %s (%v); it shows:\n%s", what, err, PageText(ctx))
	}
}

// Eval evaluates a JavaScript expression.
func Eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// PageText is the page's text, for failure messages.
func PageText(ctx context.Context) string {
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	return text
}

// Screenshot saves the page to dir/name. With LIFELINE_UPDATE_SCREENSHOTS=1 dir is docs/img of the repository
// (the pictures in the docs; root is the test's path to the repository's root), else $LIFELINE_SCREENSHOT_DIR or
// out in the test's directory.
func Screenshot(t testing.TB, ctx context.Context, root, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 means PNG
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("LIFELINE_SCREENSHOT_DIR")
	switch {
	case os.Getenv("LIFELINE_UPDATE_SCREENSHOTS") == "1":
		dir = filepath.Join(root, "docs", "img")
	case dir == "":
		dir = "out"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 10_000 {
		t.Errorf("screenshot %s is suspiciously small: %d bytes", name, len(png))
	}
	t.Logf("screenshot: %s (%d bytes)", filepath.Join(dir, name), len(png))
}

// NoOverflow checks that nothing sticks out sideways at the window's width.
func NoOverflow(t testing.TB, ctx context.Context, width int) {
	t.Helper()
	if w := Eval[int](t, ctx, `document.documentElement.scrollWidth`); w > width {
		t.Errorf("the page is %d px wide in a %d px window: something overflows", w, width)
	}
}
