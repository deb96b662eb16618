// Package e2e holds the end-to-end tests that need more than Go: the status page in headless Chromium. The npm
// client tests live in e2e/node and are driven by the Go tests of the packages they exercise.
package e2e
