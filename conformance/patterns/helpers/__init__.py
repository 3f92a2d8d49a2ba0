"""What several pattern kinds share: option parsing (torch-free), module calls, memory probes, the example search."""
