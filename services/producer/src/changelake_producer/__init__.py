"""changelake producer: fake persons written to DynamoDB at a chosen rate and mix.

Entry points: ``__main__`` (the ECS task), ``lambda_handler`` (the loader Lambda), both wired by
:mod:`changelake_producer.bootstrap`; the pure run is :mod:`changelake_producer.service`.
"""
