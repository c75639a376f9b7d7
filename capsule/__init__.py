"""The Gemini capsule (Jetforce + Titan uploads). STUB."""
