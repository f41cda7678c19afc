package views

import (
	"strconv"
	"strings"
)

const (
	sparkW, sparkH = 120, 28
	sparkViewBox   = "0 0 120 28"
)

func itoa(n int) string { return strconv.Itoa(n) }

// sparkPoints scales values into the sparkline's box: time left to right,
// zero to the largest value bottom to top (a flat line sits at the bottom
// when everything is zero, in the middle otherwise).
func sparkPoints(values []float64) string {
	hi := 0.0
	for _, v := range values {
		hi = max(hi, v)
	}
	var b strings.Builder
	step := float64(sparkW) / float64(max(len(values)-1, 1))
	for i, v := range values {
		y := float64(sparkH) - 1
		if hi > 0 {
			y = 1 + (float64(sparkH)-2)*(1-v/hi)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(float64(i)*step, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	return b.String()
}
