package web

import "net/http"

// scenarioRoutes: the pages of this area are being written.
func (c *Console) scenarioRoutes(mux *http.ServeMux) {}
