package check

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Report is the outcome of a check: config problems, each region's probes, the parity table and every finding.
type Report struct {
	Config []Finding `json:"config_errors"` // from config validation, each naming its field
	Probed bool      `json:"probed"`        // deployments answered a real request (--probe)
	// ARMDiscovery says what finding the regions' resources in Resource Manager came to ("" when not tried).
	ARMDiscovery string         `json:"arm_discovery,omitempty"`
	Regions      []RegionResult `json:"regions"`
	Parity       []ParityRow    `json:"parity"`
	Findings     []Finding      `json:"findings"`
}

// AddConfigError records a config validation problem; message names the field ("regions[1].endpoint: ...") and
// fix says what to do.
func (r *Report) AddConfigError(field, message, fix string) {
	r.Config = append(r.Config, Finding{Severity: Error, Kind: KindConfig, Field: field, Message: message, Fix: fix})
}

// Worst is the highest severity found, Info when nothing is wrong.
func (r *Report) Worst() Severity {
	w := Info
	for _, f := range append(append([]Finding(nil), r.Config...), r.Findings...) {
		if f.Severity > w {
			w = f.Severity
		}
	}
	return w
}

// ExitCode is 0 when all is good, 1 with warnings, 2 with errors.
func (r *Report) ExitCode() int { return int(r.Worst()) }

// Counts returns the number of errors and warnings.
func (r *Report) Counts() (errors, warnings int) {
	for _, f := range append(append([]Finding(nil), r.Config...), r.Findings...) {
		switch f.Severity {
		case Error:
			errors++
		case Warning:
			warnings++
		}
	}
	return
}

// WriteJSON writes the report for machines.
func (r *Report) WriteJSON(w io.Writer) error {
	out := *r // lists are [] rather than null for machines
	for _, l := range []*[]Finding{&out.Config, &out.Findings} {
		if *l == nil {
			*l = []Finding{}
		}
	}
	if out.Regions == nil {
		out.Regions = []RegionResult{}
	}
	if out.Parity == nil {
		out.Parity = []ParityRow{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteText writes the report as tables for people.
func (r *Report) WriteText(w io.Writer) error {
	if len(r.Config) > 0 {
		fmt.Fprintf(w, "CONFIG: %d error(s); no region was probed: fix the config first\n", len(r.Config))
		for _, f := range r.Config {
			fmt.Fprintf(w, "  %s\n", f.Message)
			if f.Fix != "" {
				fmt.Fprintf(w, "          fix: %s\n", f.Fix)
			}
		}
		fmt.Fprintln(w)
	}
	if len(r.Regions) > 0 {
		r.writeRegions(w)
		r.writeEntra(w)
		if r.ARMDiscovery != "" {
			fmt.Fprintf(w, "Resource Manager: %s\n\n", r.ARMDiscovery)
		}
		r.writeDeployments(w)
		r.writeParity(w)
	}
	if len(r.Findings) > 0 {
		fmt.Fprintln(w, "FINDINGS")
		for _, f := range r.Findings {
			subject := strings.Trim(strings.Join([]string{f.Region, f.Name}, " "), " ")
			fmt.Fprintf(w, "  %-7s %s: %s\n", f.Severity, subject, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(w, "          fix: %s\n", f.Fix)
			}
		}
		fmt.Fprintln(w)
	}
	e, wn := r.Counts()
	verdict := "OK: every region can serve every name"
	switch {
	case e > 0:
		verdict = "ERRORS"
	case wn > 0:
		verdict = "WARNINGS"
	}
	_, err := fmt.Fprintf(w, "%s (%d error(s), %d warning(s); exit %d)\n", verdict, e, wn, r.ExitCode())
	return err
}

func msText(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fms", *v)
}

func (r *Report) writeRegions(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tPRIO\tENDPOINT\tDNS\tCONNECT\tTLS\tCERT\tAUTH")
	for _, g := range r.Regions {
		cert := "-"
		if g.Cert != nil {
			cert = fmt.Sprintf("%dd left", g.Cert.DaysLeft)
			if g.Cert.Error != "" {
				cert = "INVALID"
			}
		}
		auth := "ok (" + g.Auth.Method + ")"
		switch {
		case g.Network != "":
			auth = "unreachable"
		case g.Cert != nil && g.Cert.Error != "":
			auth = "not checked (tls)"
		case !g.Auth.OK:
			auth = "FAILED: " + orText(string(g.Auth.Kind), "error") + " (" + g.Auth.Method + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, g.Priority, g.Endpoint,
			msText(g.DNSMs), msText(g.ConnectMs), msText(g.TLSMs), cert, auth)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func (r *Report) writeDeployments(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREGION\tDEPLOYMENT\tSTATUS\tMODEL\tVERSION\tCHECKED BY")
	type line struct{ name, region, s string }
	var lines []line
	for _, g := range r.Regions {
		for _, d := range g.Deployments {
			model, version := d.ID.Name, d.ID.Version
			if d.ID.FineTuned {
				model, version = "fine-tuned "+d.ID.Base, "ft-"+d.ID.JobHex
			}
			if model == "" {
				model = "?"
				if !r.Probed && d.Status == StatusOK {
					model = "? (--probe or ARM)"
				}
			}
			checked := d.Probe
			if checked == "exists" && d.Kind != "" && d.Kind != ModelChat {
				checked = "exists (" + string(d.Kind) + " model: not asked to generate)"
			}
			lines = append(lines, line{d.Name, g.Name, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				d.Name, g.Name, d.Deployment, d.Status, model, orText(version, "-"), orText(checked, "-"))})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].name < lines[j].name })
	for _, l := range lines {
		fmt.Fprint(tw, l.s)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func (r *Report) writeParity(w io.Writer) {
	if len(r.Parity) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "PARITY")
	for _, g := range r.Regions {
		fmt.Fprintf(tw, "\t%s (p%d)", g.Name, g.Priority)
	}
	fmt.Fprintln(tw)
	for _, row := range r.Parity {
		fmt.Fprint(tw, row.Name)
		for _, g := range r.Regions {
			c, ok := row.Regions[g.Name]
			switch {
			case !ok:
				fmt.Fprint(tw, "\t— not mapped")
			case c.Status != StatusOK:
				fmt.Fprintf(tw, "\t✗ %s", c.Status)
			case c.FineTuned:
				fmt.Fprintf(tw, "\t✓ ft:%s", c.Base)
			case c.Model != "":
				fmt.Fprintf(tw, "\t✓ %s", strings.TrimSpace(c.Model+" "+c.Version))
			default:
				fmt.Fprint(tw, "\t✓ exists")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
}
