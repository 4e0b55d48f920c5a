"""The Client API's reads over the run records (chalicelib/TABLE.md): one Query or GetItem a page."""
