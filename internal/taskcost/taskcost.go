// Package taskcost defines the unit of task cost and concierge capacity, a
// hundredth of a CPU core, and is the one place that converts between it
// and the cores operators think in.
//
// Operators give a concierge's capacity in CPU cores (portier concierge
// --capacity N, default the number of CPUs), the node registers and the
// REST API shows it in cores; the compiler writes each task's cost in units
// (compile.Description.Cost), the store keeps it in units (tasks.cost,
// migration 00012), and the scheduler compares units with FromCores of the
// registered capacity. What a person reads (pending reasons, the cluster
// page, the REST API's task cost and cost used) is Cores or Format of units.
package taskcost

import "strconv"

// PerCore is the cost units of one CPU core.
const PerCore = 100

// Copy is the cost of a task that copies the stream without encoding it
// (restream, record, pull: ffmpeg -c copy): 0.10 core. A copy of a
// 2 Mbit/s H.264+AAC stream measured 0.02-0.03 cores on a 2 vCPU Xeon
// (tests/bench/taskcost.sh, docs/benchmarks.md "Task cost"); a copy's CPU
// grows with the bitrate, so 0.10 leaves room for streams of three times
// that rate and for the host's share of the relay and supervisord. A
// 2-core concierge runs 20 copying tasks where it ran 2. Migration 00012
// wrote this value into stored tasks: changing it needs a migration too.
const Copy = 10

// Encode is the cost of encoding one 640x360 rendition at 30 fps (x264
// veryfast with its AAC audio), the unit of the HLS ladder's encoding work
// (compile.HLSCost): one core (measured: 0.4 of a core, decoding a 720p
// source included, so the rule is generous).
const Encode = PerCore

// FromCores is the capacity in units of cores CPU cores.
func FromCores(cores int) int { return cores * PerCore }

// Cores is units in CPU cores.
func Cores(units int) float64 { return float64(units) / PerCore }

// Format writes units as cores with two decimals ("0.05", "2.00"), as
// pending reasons and the UI show them.
func Format(units int) string { return strconv.FormatFloat(Cores(units), 'f', 2, 64) }
