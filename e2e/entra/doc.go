// Package entra holds the end-to-end tests of Microsoft Entra ID: every way in (service principal, managed
// identity through App Service or IMDS, workload identity, a user-assigned managed identity), through the gateway
// and the library, with the real azidentity credentials talking to the stand-ins of internal/entratest. Lifeline
// runs in child processes with exactly the environment an operator would give it.
package entra
