package live

import (
	"context"
)

// Demand is what the enabled task configs ask of concierges when all
// their streams are live at once.
type Demand struct {
	// Cost is the sum of their compiled costs (taskcost units).
	Cost int
	// Configs is how many configs that is.
	Configs int
}

// ConfigDemand compiles every enabled task config of an enabled stream as
// it would when the stream goes live (pulls: now) and sums what the
// concierges would run. A config that does not compile counts nothing (its
// task fails instead of running), nor does a pull of an RTSP source, which
// an origin relay pulls itself (every origin can: nodewire.CapRTSPPull).
func (l *State) ConfigDemand(ctx context.Context) (Demand, error) {
	sts, cfgs, err := l.st.EnabledCompileInputs(ctx)
	if err != nil {
		return Demand{}, err
	}
	var d Demand
	for i := range cfgs {
		st := sts[cfgs[i].StreamID]
		if st == nil {
			continue // deleted meanwhile
		}
		desc, err := compileConfig(&cfgs[i], st, l.env)
		if err != nil || desc.RelayPull != nil {
			continue
		}
		d.Cost += max(desc.Cost, 1) // as models.Task.BeforeCreate
		d.Configs++
	}
	return d, nil
}
