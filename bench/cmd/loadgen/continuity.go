package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lifeline-sre/lifeline/bench/continuity"
)

// runContinuity runs the continuity scenario (package bench/continuity) from a plan the harness wrote
// (bench/continuity.sh), and writes the raw results (JSON) and the report (Markdown).
func runContinuity(args []string) error {
	fs := flag.NewFlagSet("continuity", flag.ContinueOnError)
	planPath := fs.String("plan", "", "the plan (JSON: peers, faults, timing)")
	out := fs.String("out", "", "raw results (JSON)")
	md := fs.String("md", "", "the report (Markdown)")
	commit := fs.String("commit", "", "commit measured, for the report")
	quick := fs.Bool("quick", false, "say in the report that this was a quick run")
	command := fs.String("command", "", "the command that reproduces the run, for the report")
	var versions multi
	fs.Var(&versions, "version", "a peer's version, for the report (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*planPath)
	if err != nil {
		return err
	}
	var plan continuity.Plan
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&plan); err != nil {
		return fmt.Errorf("%s: %w", *planPath, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	load := loadAverage()
	res, err := continuity.Run(ctx, plan, logf)
	if res == nil {
		return err
	}
	if *out != "" {
		if werr := writeJSON(*out, res); werr != nil {
			return werr
		}
	}
	if *md != "" {
		var buf bytes.Buffer
		res.Markdown(&buf, continuity.Meta{Commit: *commit, Quick: *quick, Command: *command, Versions: versions,
			LoadAverage: load + " at the start, " + loadAverage() + " at the end"})
		if werr := os.WriteFile(*md, buf.Bytes(), 0o644); werr != nil {
			return werr
		}
	}
	return err
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, "; ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
