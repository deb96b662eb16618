package check

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// Severity orders findings; the command's exit code is the highest one (0 ok, 1 warning, 2 error).
type Severity int

const (
	Info Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	return [...]string{"info", "warning", "error"}[s]
}

// MarshalJSON writes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Finding kinds.
const (
	KindConfig           = "config"
	KindNetwork          = "network"
	KindTLS              = "tls"
	KindAuth             = "auth"
	KindDeployment       = "deployment"
	KindFineTunedMissing = "finetuned_missing"
	KindSinglePoint      = "single_point_of_failure"
	KindVersionMismatch  = "version_mismatch"
	KindNoBackup         = "no_backup"
	KindNoWorkingBackup  = "no_working_backup"
	KindBaseVsFineTuned  = "finetuned_vs_base"
	KindDeploymentBusy   = "deployment_throttled"
	KindCertExpiringSoon = "cert_expiring"
	KindARM              = "arm"
)

// Finding is one thing that is wrong or at risk, with the fix.
type Finding struct {
	Severity Severity `json:"severity"`
	Kind     string   `json:"kind"`
	Region   string   `json:"region,omitempty"`
	Name     string   `json:"name,omitempty"` // client-visible name
	Field    string   `json:"field,omitempty"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

// ParityRow is one client-visible name across the regions.
type ParityRow struct {
	Name    string                `json:"name"`
	Regions map[string]ParityCell `json:"regions"` // only regions that map the name
}

// ParityCell is what one region serves for a name.
type ParityCell struct {
	Deployment string `json:"deployment"`
	Status     string `json:"status"`
	Model      string `json:"model,omitempty"`
	Version    string `json:"version,omitempty"`
	FineTuned  bool   `json:"fine_tuned,omitempty"`
	Base       string `json:"base,omitempty"`
}

// ParityTable arranges the deployment results by client-visible name.
func ParityTable(regions []RegionResult) []ParityRow {
	rows := map[string]*ParityRow{}
	for _, r := range regions {
		for _, d := range r.Deployments {
			row := rows[d.Name]
			if row == nil {
				row = &ParityRow{Name: d.Name, Regions: map[string]ParityCell{}}
				rows[d.Name] = row
			}
			row.Regions[r.Name] = ParityCell{Deployment: d.Deployment, Status: d.Status, Model: d.ID.Name,
				Version: d.ID.Version, FineTuned: d.ID.FineTuned, Base: d.ID.Base}
		}
	}
	out := make([]ParityRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// regionFindings turns each region's own probe results into findings.
func regionFindings(regions []RegionResult) []Finding {
	var out []Finding
	for _, r := range regions {
		out = append(out, oneRegion(r)...)
	}
	return out
}

func oneRegion(r RegionResult) []Finding {
	var out []Finding
	add := func(s Severity, kind, msg, fix string) {
		out = append(out, Finding{Severity: s, Kind: kind, Region: r.Name, Message: msg, Fix: fix})
	}
	if r.Network != "" {
		kind := KindNetwork
		if strings.HasPrefix(r.Network, "tls:") {
			kind = KindTLS
		}
		add(Error, kind, "unreachable: "+r.Network, "check the endpoint, DNS, firewall and private endpoint for this region")
		return out
	}
	if c := r.Cert; c != nil {
		switch {
		case c.Error != "":
			add(Error, KindTLS, "certificate not valid: "+c.Error, "the endpoint must present a certificate that this machine trusts for its host name (for a private CA: --ca-file)")
			return out
		case c.DaysLeft < 30:
			add(Warning, KindCertExpiringSoon, fmt.Sprintf("certificate expires in %d days (%s)", c.DaysLeft, c.NotAfter.Format("2006-01-02")), "renew the certificate")
		}
	}
	if r.ARM != "" && r.ARM != "listed" {
		add(Warning, KindARM, "could not list deployments through Azure Resource Manager: "+r.ARM,
			"check --arm-resource, that the token is current (az login, LIFELINE_ARM_TOKEN) and that the identity can read the resource (Reader role)")
	}
	if f, ok := clockFinding(r); ok {
		out = append(out, f)
	}
	if !r.Auth.OK {
		msg := orText(string(r.Auth.Kind), r.Auth.Message)
		if r.Auth.Kind != "" && r.Auth.Message != "" {
			msg += ": " + r.Auth.Message
		}
		fix := r.Auth.Fix
		if fix == "" {
			fix = "the models list (GET /openai/models) failed with this credential: check api_key or entra for this region, and that the endpoint is this resource's"
		}
		add(Error, KindAuth, fmt.Sprintf("auth (%s) failed: %s", r.Auth.Method, msg), fix)
		return out
	}
	for _, d := range r.Deployments {
		f := Finding{Region: r.Name, Name: d.Name, Kind: KindDeployment, Field: "deployments." + d.Name}
		switch d.Status {
		case StatusMissing:
			f.Severity, f.Message = Error, fmt.Sprintf("deployment %q does not exist", d.Deployment)
			f.Fix = "create the deployment in this region, or fix the deployment name in the config"
			if d.ID.FineTuned && !contains(r.Models, d.Model) {
				f.Kind = KindFineTunedMissing
				f.Message = fmt.Sprintf("fine-tuned model %s is not in this region", d.Model)
				f.Fix = "copy it here with `lifeline finetune replicate`, then deploy it"
			}
		case StatusError:
			f.Severity, f.Message = Error, "deployment does not answer: "+d.Error
			f.Fix = "check the deployment's state in the Azure portal (Deployments) and the region's service health; run lifeline check again when it answers"
		case StatusThrottled:
			f.Severity, f.Kind, f.Message = Warning, KindDeploymentBusy, "deployment answered 429 (rate limited): "+d.Error
			f.Fix = "it exists, but has no spare capacity for failover traffic; raise its TPM"
		default:
			continue
		}
		out = append(out, f)
	}
	return out
}

func orText(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Analyze compares the regions with each other. It is a pure function of the probe results.
func Analyze(regions []RegionResult) []Finding {
	var out []Finding
	levels := map[int]bool{}
	for _, r := range regions {
		levels[r.Priority] = true
	}
	for _, row := range ParityTable(regions) {
		out = append(out, analyzeName(row, regions, len(levels))...)
	}
	return out
}

func analyzeName(row ParityRow, regions []RegionResult, nLevels int) []Finding {
	var out []Finding
	add := func(s Severity, kind, msg, fix string) {
		out = append(out, Finding{Severity: s, Kind: kind, Name: row.Name, Message: msg, Fix: fix})
	}
	var serving, working []RegionResult
	for _, r := range regions {
		if c, ok := row.Regions[r.Name]; ok {
			serving = append(serving, r)
			if c.Status == StatusOK || c.Status == StatusThrottled {
				working = append(working, r)
			}
		}
	}
	if len(serving) == 1 {
		add(Warning, KindSinglePoint, fmt.Sprintf("only %s serves it: a single point of failure", serving[0].Name),
			"map it in a second region")
	} else if len(working) == 0 && len(serving) > 1 {
		add(Error, KindNoWorkingBackup, fmt.Sprintf("mapped in %d regions and none of them answers", len(serving)),
			"fix the regions' problems above")
	} else if len(working) == 1 && len(serving) > 1 {
		add(Error, KindNoWorkingBackup, fmt.Sprintf("mapped in %d regions but only %s answers: no working backup",
			len(serving), working[0].Name), "fix the failing regions' problems above")
	}
	if lv := levelsOf(serving); len(lv) == 1 && nLevels > 1 && len(serving) > 1 {
		add(Warning, KindNoBackup, fmt.Sprintf("served only at priority %d (%s); no region of another priority level backs it up",
			lv[0], regionNames(serving)), "map it in a region of another priority level")
	}
	out = append(out, versionFindings(row, serving)...)
	out = append(out, fineTuneFindings(row, regions)...)
	return out
}

func regionNames(rs []RegionResult) string {
	if len(rs) == 0 {
		return "none"
	}
	n := make([]string, len(rs))
	for i, r := range rs {
		n[i] = r.Name
	}
	return strings.Join(n, ", ")
}

func levelsOf(rs []RegionResult) []int {
	set := map[int]bool{}
	for _, r := range rs {
		set[r.Priority] = true
	}
	var out []int
	for p := range set {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// versionFindings compares what each region serves: the model and version, or the base model of a fine-tuned one.
func versionFindings(row ParityRow, serving []RegionResult) []Finding {
	served := map[string][]string{} // "gpt-4o 2024-08-06" -> regions
	var keys []string
	var ft, base []string
	for _, r := range serving {
		c := row.Regions[r.Name]
		if c.Model == "" {
			continue
		}
		k := strings.TrimSpace(c.Model + " " + c.Version)
		if c.FineTuned {
			k = "fine-tuned from " + c.Base
			ft = append(ft, r.Name)
		} else {
			base = append(base, r.Name)
		}
		if served[k] == nil {
			keys = append(keys, k)
		}
		served[k] = append(served[k], r.Name)
	}
	var out []Finding
	if len(keys) > 1 {
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = strings.Join(served[k], ", ") + ": " + k
		}
		out = append(out, Finding{Severity: Warning, Kind: KindVersionMismatch, Name: row.Name,
			Message: "regions serve different models: " + strings.Join(parts, "; ") + " (answers change on failover)",
			Fix:     "deploy the same model version in every region"})
	}
	if len(ft) > 0 && len(base) > 0 {
		out = append(out, Finding{Severity: Warning, Kind: KindBaseVsFineTuned, Name: row.Name,
			Message: fmt.Sprintf("fine-tuned in %s but a base model in %s", strings.Join(ft, ", "), strings.Join(base, ", ")),
			Fix:     "replicate the fine-tuned model with `lifeline finetune replicate`"})
	}
	return out
}

// fineTuneFindings reports regions that lack a fine-tuned model that another region serves under the name.
func fineTuneFindings(row ParityRow, regions []RegionResult) []Finding {
	var src string
	var cell ParityCell
	for _, r := range regions {
		if c, ok := row.Regions[r.Name]; ok && c.FineTuned && c.Status == StatusOK {
			src, cell = r.Name, c
			break
		}
	}
	if src == "" {
		return nil
	}
	var out []Finding
	for _, r := range regions {
		if _, ok := row.Regions[r.Name]; ok || r.Name == src {
			continue
		}
		hex := aoai.SplitModel(cell.Deployment).JobHex
		fix := fmt.Sprintf("lifeline finetune replicate --config FILE --from %s --job <job id of %s> --to %s --wait", src, cell.Deployment, r.Name)
		if hex != "" {
			fix = fmt.Sprintf("lifeline finetune replicate --config FILE --from %s --job ftjob-%s --to %s --wait", src, hex, r.Name)
		}
		out = append(out, Finding{Severity: Warning, Kind: KindFineTunedMissing, Name: row.Name, Region: r.Name,
			Message: fmt.Sprintf("fine-tuned model (from %s) is missing in %s", cell.Base, r.Name), Fix: fix})
	}
	return out
}
