"""Reading plates, container numbers and QR codes from camera frames."""
