import React from "react";

const icon = (label) => function Icon(props) {
  return React.createElement("span", { "aria-hidden": true, className: props.className, "data-icon": label }, "●");
};

export const Cereal = icon("Cereal");
export const House = icon("House");
export const Refresh = icon("Refresh");
export const Four = icon("Four");
export const Zero = icon("Zero");
export const ChevronDown = icon("ChevronDown");
export const Plus = icon("Plus");
export const Trash = icon("Trash");
export const List = icon("List");
export const Code = icon("Code");
export const InfoCircle = icon("InfoCircle");
export const Search = icon("Search");
export const Edit = icon("Edit");
export const Copy = icon("Copy");
export const Check = icon("Check");
export const Folder = icon("Folder");
export const Percentage = icon("Percentage");
export const Settings = icon("Settings");
export const Chart = icon("Chart");
export const Link = icon("Link");
export const SmallCross = icon("SmallCross");
export const ExternalLink = icon("ExternalLink");
