"""sensord's built-in sensor plugins (installed as the import package `sensord_plugins`)."""
