"""The ground floor: what every domain may import. It imports no domain and nothing else of controlplane."""
