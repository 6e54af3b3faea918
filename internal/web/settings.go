package web

import "net/http"

// settingsRoutes: the pages of this area are being written.
func (c *Console) settingsRoutes(mux *http.ServeMux) {}
