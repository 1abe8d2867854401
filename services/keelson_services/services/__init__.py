"""The reference services, one package each, built on the shared library. `keelson_services.run`
starts one by name."""
