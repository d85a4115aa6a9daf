"""Platform back ends: each turns a service description into its platform's resources."""
