package chaos

import (
	"fmt"
	"strings"
	"time"
)

// Row is one scenario's line of the result table, with its notes.
type Row struct {
	Scenario  string
	Counts    Counts
	Errors    map[string]int // error frames the load clients got, by code
	MaxAckGap time.Duration
	Transfers *MoneyCounts // nil: not checked (the scenario ended before)
	Failures  []string     // why the verdict is FAIL; empty: PASS
	Notes     []string     // details under the table
}

func (r Row) transfers() string {
	if r.Transfers == nil {
		return "-"
	}
	return fmt.Sprintf("%d / %d, %d", r.Transfers.Completed, r.Transfers.Accepted, len(r.Transfers.Problems))
}

// Passed reports the verdict.
func (r Row) Passed() bool { return len(r.Failures) == 0 }

// Verdict is the last column of the table.
func (r Row) Verdict() string {
	if r.Passed() {
		return "PASS"
	}
	return "FAIL: " + strings.Join(r.Failures, "; ")
}

var tableHeader = []string{"scenario", "acked", "acked missing from PG", "wrong seq/id", "holes (non-tombstone)",
	"tombstones", "seen-live missing", "kafka missing", "kafka dups", "errors by code", "max ack gap", "transfers completed / accepted, problems", "verdict"}

// Table renders the rows as a Markdown table whose columns line up, so the
// same text reads well on a terminal.
func Table(rows []Row) string {
	cells := [][]string{tableHeader}
	for _, r := range rows {
		c := r.Counts
		cells = append(cells, []string{
			cell(r.Scenario), fmt.Sprint(c.Acked), fmt.Sprint(c.AckedMissing), fmt.Sprint(c.WrongSeqID), fmt.Sprint(c.Holes),
			fmt.Sprint(c.Tombstones), fmt.Sprint(c.SeenMissing), fmt.Sprint(c.KafkaMissing), fmt.Sprint(c.KafkaDups),
			cell(FormatCodes(r.Errors)), fmt.Sprintf("%.1f s", r.MaxAckGap.Seconds()), r.transfers(), cell(r.Verdict()),
		})
	}
	width := make([]int, len(tableHeader))
	for _, row := range cells {
		for i, s := range row {
			width[i] = max(width[i], len([]rune(s)))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		b.WriteString("|")
		for i, s := range row {
			b.WriteString(" " + s + strings.Repeat(" ", width[i]-len([]rune(s))) + " |")
		}
		b.WriteString("\n")
	}
	line(cells[0])
	sep := make([]string, len(width))
	for i, w := range width {
		if i == 0 || i == 9 || i == 11 {
			sep[i] = strings.Repeat("-", w)
		} else {
			sep[i] = strings.Repeat("-", w-1) + ":"
		}
	}
	line(sep)
	for _, row := range cells[1:] {
		line(row)
	}
	return b.String()
}

// Notes renders each scenario's notes as a Markdown list.
func Notes(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		if len(r.Notes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "- **%s**: %s\n", r.Scenario, strings.Join(r.Notes, "; "))
	}
	return b.String()
}

// cell keeps a table cell on one line and its pipes from ending it.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", "\\|")
}
