package web

import "net/http"

// staffRoutes: the pages of this area are being written.
func (c *Console) staffRoutes(mux *http.ServeMux) {}
