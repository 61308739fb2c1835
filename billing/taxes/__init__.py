"""Tax rates: the catalogue staff keep, and the rates each tenant's invoices are taxed at."""
