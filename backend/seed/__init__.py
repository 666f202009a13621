"""Data for people and machines: a new organisation, the demo company and benchmark data.

- ``orgs``: ``fieldcrm create-org`` -- an organisation and its first admin.
- ``demo``: ``fieldcrm seed-demo`` -- the demo company "Kirill's Windows" in Kazan (ORM, small).
- ``generate``: ``fieldcrm generate`` -- a large synthetic organisation loaded with COPY.
"""
