"""Exports of the results database to the tools users already look in: TensorBoard event files
(`tensorboard`) and an MLflow tracking store (`to_mlflow`). Each needs its optional package, imported on
first use; CSV and Parquet (`fptlab export --format csv|parquet`) need only pandas."""
