"""Example study configurations for `xbar sweep`, shipped inside the package."""
