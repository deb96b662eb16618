package sim

import (
	"fmt"
	"net/http"
)

// SimSubscription is the one subscription that the simulator's Resource Manager lists.
const SimSubscription = "00000000-0000-0000-0000-00000000051a"

// armSubscriptions answers GET /subscriptions: the subscriptions the token can see (one).
func (s *Sim) armSubscriptions(w http.ResponseWriter, r *http.Request) {
	if !s.armAuthorized(w, r) {
		return
	}
	writeValue(w, http.StatusOK, map[string]any{"value": []map[string]string{{
		"id": "/subscriptions/" + SimSubscription, "subscriptionId": SimSubscription,
		"displayName": "Lifeline simulator", "state": "Enabled",
	}}})
}

// armAccounts answers GET /subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts: an OpenAI account
// per region, in resource group lifeline-sim, named after the region, with the region's URL as its endpoint (as
// Resource Manager lists accounts, properties.endpoint with a trailing slash).
func (s *Sim) armAccounts(w http.ResponseWriter, r *http.Request) {
	if !s.armAuthorized(w, r) {
		return
	}
	sub := r.PathValue("sub")
	if sub != SimSubscription {
		writeJSON(w, http.StatusNotFound, azureError("SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", sub)))
		return
	}
	var out []map[string]any
	for _, reg := range s.regions {
		out = append(out, map[string]any{
			"id":       fmt.Sprintf("/subscriptions/%s/resourceGroups/lifeline-sim/providers/Microsoft.CognitiveServices/accounts/%s", sub, reg.name),
			"name":     reg.name,
			"type":     "Microsoft.CognitiveServices/accounts",
			"kind":     "OpenAI",
			"location": reg.name,
			"sku":      map[string]string{"name": "S0"},
			"properties": map[string]any{
				"endpoint":            reg.URL() + "/",
				"endpoints":           map[string]string{"OpenAI Language Model Instance API": reg.URL() + "/"},
				"customSubDomainName": reg.name,
				"provisioningState":   "Succeeded",
			},
		})
	}
	writeValue(w, http.StatusOK, map[string]any{"value": out})
}
