"""Run directory -> tables, plots, HTML and Markdown (DESIGN.md section 9); never imports torch or locust."""
