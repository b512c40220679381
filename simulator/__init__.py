"""The reference gateway simulator (`rpm simulate`), imported as `rpm.simulator`.

- `cohort`: simulated patients, their devices, measurement plans and enrolment payloads. Pure.
- `physiology`: their readings over time, with deterioration episodes and faults. Pure.
- `gateway`: gateways that follow the MQTT contract (mqtt.md) end to end, on paho.
- `run`: enrolment through the staff API, history backfill, live publishing, `rpm simulate`.

The domain core never imports this package; it imports only the core's pure unit table.
"""
