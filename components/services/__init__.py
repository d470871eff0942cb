"""The container services on the A1 host, one ComponentResource each (`ai-swarm:service:<Name>`).

Kept free of imports on purpose: `components.config` reads the service catalog, and the
components import the config, so importing the package must not pull either in.
"""
