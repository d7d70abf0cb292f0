"""Device models of the built-in chips: fake chips on a `FakeI2CBus` that behave as their
datasheets say (id registers, calibration, measurement registers, status bits, CRC).
One module per chip; each model class has `DEFAULT_ADDRESS` and settable physical values."""
