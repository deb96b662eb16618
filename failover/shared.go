package failover

import (
	"errors"
	"fmt"
	"time"
)

// ApplyCoolDown cools deployment (its name in the region) of the region called name down until until, as if
// the region had answered 429 here: a cool-down learned from another replica. It never shortens a longer one.
// A deployment the region does not serve gives ErrUnknownDeployment.
func (t *Transport) ApplyCoolDown(name, deployment string, until time.Time) error {
	r := t.tab.Load().byName[name]
	if r == nil {
		return fmt.Errorf("%w %q", ErrUnknownRegion, name)
	}
	for _, tg := range r.targets {
		if tg.deployment == deployment {
			extend(&tg.state.coolUntil, until.UnixNano())
			return nil
		}
	}
	return fmt.Errorf("%w %q in region %s", ErrUnknownDeployment, deployment, name)
}

// ErrUnknownDeployment is returned by ApplyCoolDown for a deployment the region does not serve.
var ErrUnknownDeployment = errors.New("failover: unknown deployment")
