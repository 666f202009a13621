"""Documents: attachment storage and type checks, templates and generated PDFs."""
