package entra

import (
	"context"
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Problems a credential can have getting a token.
const (
	ProblemNoIdentity     = "no_identity"    // no credential in DefaultAzureCredential's chain found an identity
	ProblemNotAssigned    = "not_assigned"   // the managed identity is not assigned to this machine or app
	ProblemWrongTenant    = "wrong_tenant"   // the tenant does not exist, or the app is not in it
	ProblemBadSecret      = "bad_secret"     // the client secret is wrong or expired
	ProblemNoFederation   = "no_federation"  // workload identity: no federated credential matches the pod's token
	ProblemClockSkew      = "clock_skew"     // an assertion outside its validity: expired token file or a wrong clock
	ProblemUnreachable    = "unreachable"    // the authority or the managed-identity endpoint did not answer
	ProblemAuthentication = "authentication" // anything else Entra refused
)

// Diagnosis explains a failure to get a token: what is wrong, in one line, and how to fix it. Neither holds a
// secret or a token.
type Diagnosis struct {
	Problem string
	Cause   string
	Fix     string
}

var aadsts = regexp.MustCompile(`AADSTS(\d+): ((?:[^\\\r\n"]|\\[^rn"])*)`)

// Diagnose explains err, an error from GetToken of the credential built for spec.
func Diagnose(spec Spec, err error) Diagnosis { return diagnose(spec, err, os.Getenv) }

func diagnose(spec Spec, err error, getenv func(string) string) Diagnosis {
	msg := Redact(err.Error(), spec)
	if m := aadsts.FindStringSubmatch(msg); m != nil {
		text := firstSentences(m[2])
		return aadDiagnosis(spec, m[1], "AADSTS"+m[1]+": "+text)
	}
	switch {
	case spec.Kind() == KindDefault && isUnavailable(err):
		return Diagnosis{ProblemNoIdentity, "DefaultAzureCredential found no identity: " + chainSummary(msg),
			"give Lifeline an identity: a managed identity (on Azure), workload identity on AKS (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE), or tenant_id, client_id and client_secret for a service principal; on a workstation, az login"}
	case strings.Contains(msg, "Identity not found") ||
		strings.Contains(msg, "No User Assigned or Delegated Managed Identity found") ||
		strings.Contains(msg, "the requested identity isn't assigned to this resource"):
		id := "the system-assigned managed identity"
		if spec.ManagedIdentityClientID != "" {
			id = "managed identity " + spec.ManagedIdentityClientID
		} else if c := getenv("AZURE_CLIENT_ID"); c != "" && spec.Kind() == KindDefault {
			id = "managed identity " + c + " (AZURE_CLIENT_ID)"
		}
		return Diagnosis{ProblemNotAssigned, id + " is not assigned to this machine or app (the managed-identity endpoint answered: identity not found)",
			"assign the identity to the VM, scale set, App Service, container app or AKS node pool that runs Lifeline, or correct the client id"}
	case isUnreachable(err):
		return Diagnosis{ProblemUnreachable, "the identity endpoint did not answer: " + Redact(shortNetError(err), spec),
			"check that this host reaches the authority (login.microsoftonline.com, or AZURE_AUTHORITY_HOST) or its managed-identity endpoint; Lifeline keeps retrying"}
	}
	return Diagnosis{ProblemAuthentication, oneLine(msg),
		"run lifeline check --config FILE for the region's details"}
}

func aadDiagnosis(spec Spec, code, text string) Diagnosis {
	switch code {
	case "7000215", "7000222":
		return Diagnosis{ProblemBadSecret, text,
			"create a new client secret for app " + spec.ClientID + " (Entra admin center: App registrations, Certificates & secrets) and put its Value, not its Secret ID, in client_secret"}
	case "700016", "90002", "900023", "90072":
		return Diagnosis{ProblemWrongTenant, text,
			"set tenant_id to the Directory (tenant) ID where the application is registered (and client_id to its Application (client) ID); with AZURE_TENANT_ID for workload identity"}
	case "70021", "700211", "700212", "700213", "7002138":
		return Diagnosis{ProblemNoFederation, text,
			"add a federated credential to the identity with the cluster's OIDC issuer URL, subject system:serviceaccount:NAMESPACE:SERVICEACCOUNT and audience api://AzureADTokenExchange (az identity federated-credential create)"}
	case "700024", "700027":
		return Diagnosis{ProblemClockSkew, text,
			"check this host's clock (NTP) and that the projected service-account token file is being refreshed (kubelet)"}
	}
	return Diagnosis{ProblemAuthentication, text, "see https://login.microsoftonline.com/error?code=" + code}
}

// isUnreachable: no HTTP answer at all. azidentity flattens transport errors into text ("server response error:"
// followed by the Go error), so the text is what tells.
func isUnreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	if errors.As(err, &op) || errors.As(err, &dns) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"server response error", "connection refused", "i/o timeout", "no such host",
		"context deadline exceeded", "connection reset", "EOF", "timed out"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// isUnavailable: every credential of the chain said it could not even try.
func isUnavailable(err error) bool {
	var af *azidentity.AuthenticationFailedError
	return !errors.As(err, &af) && strings.Contains(err.Error(), "Attempted credentials")
}

func shortNetError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return oneLine(err.Error())
}

// oneLine joins an SDK error's lines, without the troubleshooting link, in at most 300 characters.
func oneLine(s string) string {
	if i := strings.Index(s, "To troubleshoot, visit"); i >= 0 {
		s = s[:i]
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.TrimSpace(s)
}

// chainSummary turns DefaultAzureCredential's "Attempted credentials:" list into one line.
func chainSummary(msg string) string {
	_, list, ok := strings.Cut(msg, "Attempted credentials:")
	if !ok {
		return firstLine(msg)
	}
	var parts []string
	for _, l := range strings.Split(list, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "To troubleshoot") || strings.HasPrefix(l, "---") {
			continue
		}
		name, rest, ok := strings.Cut(l, ": ")
		if !ok || strings.ContainsAny(name, " {}\"") {
			continue // a continuation line of the credential above
		}
		parts = append(parts, name+": "+firstSentences(rest))
	}
	return strings.Join(parts, "; ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

// firstSentences keeps at most 300 characters of one line.
func firstSentences(s string) string {
	s = firstLine(s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)

// Redact removes from s anything that looks like a token, and the spec's client secret.
func Redact(s string, spec Spec) string {
	s = jwtLike.ReplaceAllString(s, "[token]")
	if len(spec.ClientSecret) >= 4 {
		s = strings.ReplaceAll(s, spec.ClientSecret, "[secret]")
	}
	return s
}
