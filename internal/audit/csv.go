package audit

import "strings"

// SafeCell makes a CSV cell safe to open in a spreadsheet: a cell that Excel, LibreOffice
// or Google Sheets would run as a formula (starting with =, +, -, @, a tab or a carriage
// return, or their full-width forms ＝＋－＠, which Japanese input produces) gets a
// leading single quote, which spreadsheets show as text and hide. A cell already starting
// with a single quote gets one more, so the change can be undone exactly: drop one
// leading quote when there is one. Every CSV export of linestep passes its cells
// through this.
func SafeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + s
	}
	for _, p := range []string{"＝", "＋", "－", "＠"} {
		if strings.HasPrefix(s, p) {
			return "'" + s
		}
	}
	return s
}
