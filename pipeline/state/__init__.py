"""What lasts between nights: flag states and the audit ledger, the run ledger, licence
history, the run lock and the model store. The only package besides ``ingest`` that reads
and writes persistent files."""
